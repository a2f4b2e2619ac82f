#include <doctest/doctest.h>

#include "gor_command.hpp"
#include "pipeline_file.hpp"

using namespace doppel;
using namespace doppel::core;

namespace {
PipelineSpec parsed(const std::vector<std::string>& args) {
  auto t = translate_gor_command_line(args);
  std::vector<ConfigError> errors;
  auto spec = load_pipeline_text(t.pipeline_toml, "gor.toml", errors);
  REQUIRE_MESSAGE(errors.empty(), t.pipeline_toml);
  REQUIRE(spec);
  return *spec;
}
const StageSpec& stage(const PipelineSpec& spec, const std::string& name) {
  for (const auto& s : spec.stages)
    if (s.name == name) return s;
  FAIL("no stage " << name);
  throw std::logic_error("unreachable");
}
std::string option(const StageSpec& s, const std::string& key) {
  const Value* v = s.options.find(key);
  return v ? v->to_toml() : "(unset)";
}
std::vector<std::string> from(const StageSpec& s) {
  std::vector<std::string> out;
  for (const auto& f : s.from) out.push_back(f.stage);
  return out;
}
}  // namespace

TEST_CASE("the seed's GoReplay command line becomes capture -> middleware -> filter -> http, replays back") {
  auto spec = parsed({"--input-raw", ":16888", "--input-raw-track-response", "--output-http",
                      "http://10.13.118.203:17555", "--output-http-track-response", "--middleware",
                      "python3 middleware.py", "--http-allow-url", "/v2/robot/query", "--http-allow-url",
                      "/v2/robot/input_hint", "--http-allow-url", "/v1/robot/intention"});
  auto& raw = stage(spec, "raw");
  CHECK(option(raw, "interface") == "\"any\"");
  CHECK(option(raw, "port") == "16888");
  CHECK(option(raw, "track_response") == "true");
  auto& mw = stage(spec, "middleware");
  CHECK(option(mw, "command") == "\"python3 middleware.py\"");
  CHECK(from(mw) == std::vector<std::string>{"raw", "http"});
  auto& urls = stage(spec, "urls");
  CHECK(from(urls) == std::vector<std::string>{"middleware"});
  CHECK(option(urls, "allow") == "[\"/v2/robot/query\", \"/v2/robot/input_hint\", \"/v1/robot/intention\"]");
  auto& http = stage(spec, "http");
  CHECK(from(http) == std::vector<std::string>{"urls"});
  CHECK(option(http, "url") == "\"http://10.13.118.203:17555\"");
  CHECK(option(http, "track_response") == "true");
  CHECK(spec.settings.stats_interval.count() == 0);
}

TEST_CASE("flag spellings: -flag, --flag, =value, separate value, repeats") {
  auto a = parsed({"-input-file=requests.gor|200%", "--output-stdout", "-http-allow-method", "GET", "--http-allow-method=POST"});
  CHECK(option(stage(a, "file"), "speed") == "\"200%\"");
  CHECK(option(stage(a, "file"), "path") == "\"requests.gor\"");
  CHECK(option(stage(a, "methods"), "allow") == "[\"GET\", \"POST\"]");
  CHECK(from(stage(a, "stdout")) == std::vector<std::string>{"methods"});
}

TEST_CASE("input-raw address forms") {
  CHECK(option(stage(parsed({"--input-raw", "127.0.0.1:80", "--output-null"}), "raw"), "host") == "\"127.0.0.1\"");
  CHECK(option(stage(parsed({"--input-raw", "eth0:80", "--output-null"}), "raw"), "interface") == "\"eth0\"");
  CHECK(option(stage(parsed({"--input-raw", ":80,8080", "--output-null"}), "raw"), "ports") == "[80, 8080]");
  CHECK(option(stage(parsed({"--input-raw", "dump.pcap", "--output-null"}), "raw"), "file") == "\"dump.pcap\"");
  auto limited = parsed({"--input-raw", ":80|10%", "--output-null"});
  CHECK(option(stage(limited, "raw_limit"), "percent") == "10.0");
  CHECK(from(stage(limited, "null")) == std::vector<std::string>{"raw_limit"});
}

TEST_CASE("every filter and rewrite flag maps to a stage, in GoReplay's order") {
  auto spec = parsed({"--input-file", "in.gor", "--output-file", "out_%Y.gor", "--output-file-size-limit", "32mb",
                      "--output-file-queue-limit", "500", "--http-allow-url", "^/a", "--http-disallow-url", "debug",
                      "--http-allow-method", "GET", "--http-allow-header", "X-A: ^1$", "--http-disallow-header",
                      "User-Agent: bot", "--http-basic-auth-filter", "^admin:", "--http-set-header", "X-Shadow: 1",
                      "--http-set-param", "api_key=1", "--http-rewrite-url", "/v1/(.*):/v2/$1", "--http-rewrite-header",
                      "Host: (.*).old,$1.new", "--http-header-limiter", "X-User: 10%", "--http-param-limiter",
                      "user: 5%", "--exit-after", "30s"});
  CHECK(option(stage(spec, "urls"), "deny") == "[\"debug\"]");
  CHECK(option(stage(spec, "headers"), "allow") == "[\"X-A: ^1$\"]");
  CHECK(option(stage(spec, "headers"), "deny") == "[\"User-Agent: bot\"]");
  CHECK(option(stage(spec, "basic_auth"), "basic_auth") == "[\"^admin:\"]");
  CHECK(option(stage(spec, "rewrite"), "rewrite_url") == "[\"/v1/(.*):/v2/$1\"]");
  CHECK(option(stage(spec, "rewrite"), "set_param") == "[\"api_key=1\"]");
  CHECK(option(stage(spec, "limiter"), "key") == "\"header:X-User\"");
  CHECK(option(stage(spec, "limiter_2"), "key") == "\"param:user\"");
  CHECK(option(stage(spec, "limiter_2"), "percent") == "5.0");
  auto& out = stage(spec, "file_out");
  CHECK(from(out) == std::vector<std::string>{"limiter_2"});
  CHECK(option(out, "size_limit") == "\"32MB\"");
  CHECK(option(out, "max_records") == "500");
  CHECK(spec.settings.exit_after == std::chrono::seconds(30));
  // Filter order: url, method, header, basic auth, rewrite, limiters.
  std::vector<std::string> chain;
  for (const auto& s : spec.stages)
    if (s.role == Role::filter) chain.push_back(s.name);
  CHECK(chain == std::vector<std::string>{"urls", "methods", "headers", "basic_auth", "rewrite", "limiter", "limiter_2"});
}

TEST_CASE("output files are chunked as GoReplay chunks them, unless appending") {
  auto chunked = parsed({"--input-file", "in.gor", "--output-file", "out.gor"});
  CHECK(option(stage(chunked, "file_out"), "max_records") == "256");
  CHECK(option(stage(chunked, "file_out"), "size_limit") == "\"32MB\"");
  auto appended = parsed({"--input-file", "in.gor", "--output-file", "out.gor", "--output-file-append"});
  CHECK(option(stage(appended, "file_out"), "overwrite") == "true");
  CHECK(option(stage(appended, "file_out"), "max_records") == "(unset)");
}

TEST_CASE("split output and per-output limits") {
  auto spec = parsed({"--input-file", "in.gor", "--output-http", "http://a:1|10", "--output-http", "http://b:2",
                      "--split-output"});
  CHECK(option(stage(spec, "split_http"), "index") == "0");
  CHECK(option(stage(spec, "split_http_2"), "index") == "1");
  CHECK(option(stage(spec, "limit_http"), "rate") == "\"10/s\"");
  CHECK(from(stage(spec, "http")) == std::vector<std::string>{"limit_http"});
  CHECK(from(stage(spec, "http_2")) == std::vector<std::string>{"split_http_2"});
}

TEST_CASE("tracked replays without middleware reach the other outputs, or are counted") {
  auto to_file = parsed({"--input-raw", ":80", "--input-raw-track-response", "--output-http", "http://a:1",
                         "--output-http-track-response", "--output-file", "all.gor"});
  CHECK(from(stage(to_file, "file_out")) == std::vector<std::string>{"raw", "http"});
  auto alone = parsed({"--input-raw", ":80", "--output-http", "http://a:1", "--output-http-track-response"});
  CHECK(from(stage(alone, "discard_replays")) == std::vector<std::string>{"http"});
}

TEST_CASE("unsupported and malformed flags are errors naming the flag") {
  CHECK_THROWS_WITH_AS(translate_gor_command_line({"--input-raw", ":80", "--output-htp", "x"}),
                       "unsupported GoReplay flag --output-htp; did you mean --output-http? (doppel gor --help lists "
                       "the supported flags)",
                       GorUsageError);
  CHECK_THROWS_WITH_AS(translate_gor_command_line({"--input-raw", ":80", "--output-tcp", "x:1"}),
                       doctest::Contains("unsupported GoReplay flag --output-tcp"), GorUsageError);
  CHECK_THROWS_WITH_AS(translate_gor_command_line({"--input-raw"}), "flag --input-raw needs a value", GorUsageError);
  CHECK_THROWS_WITH_AS(translate_gor_command_line({"--input-raw", ":80"}),
                       doctest::Contains("no output"), GorUsageError);
  CHECK_THROWS_WITH_AS(translate_gor_command_line({"--input-raw", ":x", "--output-null"}),
                       "--input-raw: expected a number, not \"x\"", GorUsageError);
  CHECK_THROWS_WITH_AS(translate_gor_command_line({"--input-file", "a.gor", "--output-null", "--input-file-max-wait", "soon"}),
                       doctest::Contains("--input-file-max-wait: invalid duration"), GorUsageError);
  CHECK_THROWS_WITH_AS(translate_gor_command_line({"--input-file", "a.gor", "--output-null", "--http-set-header", "nocolon"}),
                       "--http-set-header: expected \"Name: value\", not \"nocolon\"", GorUsageError);
  CHECK_THROWS_AS(translate_gor_command_line({"--input-file", "a.gor", "--output-null", "--output-http-redirects", "3"}),
                  GorUsageError);
  CHECK_THROWS_WITH_AS(translate_gor_command_line({"stray"}), doctest::Contains("unexpected argument \"stray\""),
                       GorUsageError);
}

TEST_CASE("verbose levels and dry run") {
  auto t = translate_gor_command_line({"--input-file", "a.gor", "--output-null", "--verbose", "--input-file-dry-run"});
  CHECK(t.log_level == "debug");
  CHECK(t.dry_run);
  CHECK(translate_gor_command_line({"--input-file", "a.gor", "--output-null", "--verbose", "2"}).log_level == "trace");
}
