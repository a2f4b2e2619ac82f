// Plugin `header`: keeps requests whose headers match every `allow` rule and no `deny` rule.
// A rule is "Name: regex" (RE2, matched anywhere in the value; anchor with ^...$). As in
// GoReplay (--http-allow-header / --http-disallow-header): every allow rule must match, and a
// request without the header fails an allow rule. A repeated header matches when one of its
// values does.
#include <re2/re2.h>

#include <optional>

#include "doppel/plugin.hpp"
#include "doppel/regex_options.hpp"

namespace doppel::plugins {
namespace {

struct HeaderRule {
  std::string name;
  std::unique_ptr<RE2> value;
};

struct HeaderFilterConfig {
  std::vector<HeaderRule> allow;
  std::vector<HeaderRule> deny;
  std::vector<std::unique_ptr<RE2>> basic_auth;  // matched against the decoded "user:password"
};

// Standard base64 (RFC 4648); nullopt on a character outside the alphabet.
std::optional<std::string> decode_base64(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  unsigned bits = 0;
  int count = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = value(c);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<unsigned>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

// The decoded credentials of an `Authorization: Basic ...` header, when there is one.
std::optional<std::string> basic_credentials(const HttpView& http) {
  auto auth = http.header("Authorization");
  if (!auth || auth->size() < 6 || !iequals(auth->substr(0, 6), "Basic ")) return std::nullopt;
  std::string_view encoded = auth->substr(6);
  while (!encoded.empty() && encoded.front() == ' ') encoded.remove_prefix(1);
  return decode_base64(encoded);
}

bool matches(const HttpView& http, const HeaderRule& rule) {
  for (const auto& h : http.headers())
    if (iequals(h.name, rule.name) && RE2::PartialMatch(h.value, *rule.value)) return true;
  return false;
}

class HeaderFilter : public Stage {
 public:
  explicit HeaderFilter(HeaderFilterConfig config) : config_(std::move(config)) {}

  void process(const MessagePtr& message) override {
    const HttpView& http = message->http();
    if (!http.is_request()) {
      context().drop("unparseable_request");
      return;
    }
    for (const auto& rule : config_.allow) {
      if (!matches(http, rule)) {
        context().drop("header_not_allowed");
        return;
      }
    }
    for (const auto& rule : config_.deny) {
      if (matches(http, rule)) {
        context().drop("header_denied");
        return;
      }
    }
    if (!config_.basic_auth.empty()) {
      auto credentials = basic_credentials(http);
      for (const auto& re : config_.basic_auth) {
        if (!credentials || !RE2::PartialMatch(*credentials, *re)) {
          context().drop("basic_auth_not_allowed");
          return;
        }
      }
    }
    context().emit(message);
  }

 private:
  HeaderFilterConfig config_;
};

std::vector<HeaderRule> parse_rules(const Options& options, std::string_view name) {
  std::vector<HeaderRule> rules;
  for (const auto& text : options.strings(name)) {
    auto colon = text.find(':');
    std::string header = colon == std::string::npos ? "" : text.substr(0, colon);
    while (!header.empty() && header.back() == ' ') header.pop_back();
    if (header.empty() || header.find_first_of(" \t") != std::string::npos)
      options.fail(name, "\"" + text + "\" must be \"Header-Name: regex\"");
    std::string pattern = text.substr(colon + 1);
    std::size_t start = pattern.find_first_not_of(' ');
    pattern = start == std::string::npos ? "" : pattern.substr(start);
    rules.push_back({header, compile_pattern(options, name, pattern)});
  }
  return rules;
}

PluginDefinition header_filter_definition() {
  PluginDefinition def;
  def.name = "header";
  def.role = Role::filter;
  def.description = "Keeps requests whose headers match every `allow` rule and no `deny` rule (\"Name: regex\")";
  def.accepts = KindSet::http();
  def.passes_through = true;
  def.requests_only = true;
  def.options = {
      option("allow", OptionType::string_list,
             "\"Name: regex\" rules that must all match (RE2, anywhere in the value); a request without the "
             "header is dropped. GoReplay: --http-allow-header")
          .default_value(Value::array({})),
      option("deny", OptionType::string_list,
             "\"Name: regex\" rules; a request with a matching header is dropped. GoReplay: --http-disallow-header")
          .default_value(Value::array({})),
      option("basic_auth", OptionType::string_list,
             "RE2 patterns the decoded basic-auth credentials (\"user:password\") must all match; a request "
             "without basic auth is dropped. GoReplay: --http-basic-auth-filter")
          .default_value(Value::array({})),
  };
  def.metrics = {
      {"dropped.basic_auth_not_allowed", "requests without basic auth, or whose credentials matched no pattern"},
      {"dropped.header_not_allowed", "requests missing a header or not matching an allow rule"},
      {"dropped.header_denied", "requests with a header matching a deny rule"},
      {"dropped.unparseable_request", "messages that are not a parseable HTTP request"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    HeaderFilterConfig config{parse_rules(options, "allow"), parse_rules(options, "deny"),
                              compile_patterns(options, "basic_auth")};
    return std::make_unique<HeaderFilter>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::header_filter_definition);
