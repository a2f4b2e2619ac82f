#include <doctest/doctest.h>

#include "doppel/options.hpp"

using namespace doppel;

namespace {
std::vector<OptionSpec> schema() {
  return {
      option("url", OptionType::string, "Target").required(),
      option("timeout", OptionType::duration, "Timeout").default_value("5s"),
      option("mode", OptionType::string, "Mode").default_value("wait").choices({"wait", "drop"}),
      option("in", OptionType::any_list, "Values").default_value(Value::array({})),
      option("limit", OptionType::size, "Limit").default_value("1MiB"),
      option("rule", OptionType::table_list, "Rules")
          .default_value(Value::array({}))
          .fields({option("path", OptionType::string, "Path").required()}),
  };
}
Value at(Value v, std::uint32_t line) {
  v.position.line = line;
  v.position.column = 1;
  return v;
}
}  // namespace

TEST_CASE("valid options with defaults applied") {
  std::vector<ConfigError> errors;
  auto o = Options::validate(Value::table({{"url", "http://x"}, {"in", Value::array({"664", 665})}}), schema(), errors);
  REQUIRE(errors.empty());
  CHECK(o.string("url") == "http://x");
  CHECK(o.duration("timeout") == std::chrono::seconds(5));
  CHECK(o.string("mode") == "wait");
  CHECK(o.strings("in") == std::vector<std::string>{"664", "665"});
  CHECK(o.size("limit") == 1u << 20);
  CHECK(o.has("url"));
  CHECK_FALSE(o.has("timeout"));
}

TEST_CASE("every problem is reported with the key's position") {
  std::vector<ConfigError> errors;
  Value::Table t;
  t.emplace_back("timeout", at("5 seconds", 2));
  t.emplace_back("mode", at("fast", 3));
  t.emplace_back("limt", at(5, 4));
  t.emplace_back("rule", at(Value::array({Value::table({{"paht", "x"}})}), 5));
  Value table(t);
  table.position.line = 1;
  Options::validate(table, schema(), errors);
  REQUIRE(errors.size() == 6);
  std::vector<std::string> messages;
  for (auto& e : errors) messages.push_back(std::to_string(e.position().line) + " " + e.what());
  CHECK(messages[0].starts_with("2 option \"timeout\": invalid duration \"5 seconds\""));
  CHECK(messages[1] == "3 option \"mode\" must be one of \"wait\", \"drop\", not \"fast\"");
  CHECK(messages[2] == "4 unknown option \"limt\"; did you mean \"limit\"? (allowed: url, timeout, mode, in, limit, rule)");
  CHECK(messages[3].find("unknown option \"paht\"; did you mean \"path\"?") != std::string::npos);
  CHECK(messages[4].find("missing required option \"path\"") != std::string::npos);
  CHECK(messages[5] == "1 missing required option \"url\" (string: Target)");
}

TEST_CASE("closest names") {
  CHECK(closest_names("alow", {"allow", "deny"}) == std::vector<std::string>{"allow"});
  CHECK(closest_names("zzzzzz", {"allow", "deny"}).empty());
}
