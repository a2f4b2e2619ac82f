#include <doctest/doctest.h>
#include <simdjson.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <thread>

#include "doppel/testing.hpp"

using namespace doppel;

namespace {

MessagePtr msg(Kind kind, const std::string& id, std::string payload, std::string stage = "",
               std::int64_t latency_ns = 0, std::string error = "") {
  Message m(kind, id, 1700000000000000000, std::move(payload));
  m.latency_ns = latency_ns;
  m.meta.stage = std::move(stage);
  m.meta.error = std::move(error);
  return share(std::move(m));
}

MessagePtr post(const std::string& id, const std::string& path, const std::string& body = "{}") {
  return msg(Kind::request, id,
             "POST " + path + " HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
}

std::string response(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         body;
}

MessagePtr original(const std::string& id, int status, const std::string& body, std::int64_t latency = 1000000) {
  return msg(Kind::response, id, response(status, body), "capture", latency);
}

MessagePtr replay(const std::string& id, int status, const std::string& body, std::string stage = "candidate",
              std::int64_t latency = 2000000) {
  return msg(Kind::replay, id, response(status, body), std::move(stage), latency);
}

// Comparators for the join logic; the stock ones are tested in their own folders.
struct StatusCheck : Comparator {
  std::vector<Difference> compare(const Exchange& e) const override {
    int a = e.original->http().status(), b = e.replay->http().status();
    if (a == b) return {};
    return {{"status", "changed", std::to_string(a), std::to_string(b)}};
  }
};
struct BodyCheck : Comparator {
  std::vector<Difference> compare(const Exchange& e) const override {
    if (e.original->body().bytes == e.replay->body().bytes) return {};
    return {{"body", "changed", e.original->body().bytes, e.replay->body().bytes}};
  }
};
// A stand-in for `nonempty`: the replay's JSON has a non-empty "LIST": [...].
struct NonEmptyList : Comparator {
  explicit NonEmptyList(std::string list) : list_(std::move(list)) {}
  std::vector<Difference> compare(const Exchange& e) const override {
    std::regex re("\"" + list_ + "\"\\s*:\\s*\\[\\s*[^\\]\\s]");
    if (std::regex_search(e.replay->body().bytes, re)) return {};
    return {{"results." + list_, "empty", "", "[]"}};
  }
  std::string list_;
};
// Differences at fields "a", "b", ... named in a flat {"a":1,...} object, one per key.
struct FieldsCheck : Comparator {
  std::vector<Difference> compare(const Exchange& e) const override {
    simdjson::dom::parser p1, p2;
    simdjson::dom::object a, b;
    if (p1.parse(e.original->body().bytes).get(a) || p2.parse(e.replay->body().bytes).get(b)) return {};
    std::vector<Difference> out;
    for (auto [k, v] : a) {
      simdjson::dom::element other;
      if (b.at_key(k).get(other) || simdjson::to_string(other) != simdjson::to_string(v))
        out.push_back({std::string(k), "changed", std::string(simdjson::to_string(v)), ""});
    }
    return out;
  }
};
struct Throwing : Comparator {
  std::vector<Difference> compare(const Exchange&) const override { throw std::runtime_error("boom"); }
};

struct Parsed {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  explicit Parsed(const MessagePtr& m) {
    REQUIRE(m->kind == Kind::verdict);
    auto err = parser.parse(m->payload).get(root);
    REQUIRE_MESSAGE(!err, m->payload);
  }
  std::string str(const char* key) { return std::string(root[key].get_string().value()); }
  simdjson::dom::array checks() { return root["checks"].get_array().value(); }
};

void add_seed_comparators(testing::StageHarness& h) {
  h.add_comparator("status", std::make_unique<StatusCheck>());
  h.add_comparator("body", std::make_unique<BodyCheck>());
  h.add_comparator("hints", std::make_unique<NonEmptyList>("hint_list"));
  h.add_comparator("intentions", std::make_unique<NonEmptyList>("intention_list"));
}

// `options` judged on the caller's thread (threads = 1): verdicts are out when process()
// returns, in the order the exchanges completed. The tests of `threads` > 1 wait for them.
Value one_thread(Value options) {
  options.as_table().emplace_back("threads", 1);
  return options;
}

// The seed workflow's three rules, as pipelines/robot-shadow.toml writes them.
Value seed_rules() {
  return Value::table({{"rule", Value::array({
                                    Value::table({{"name", "input_hint"},
                                                  {"path", "^/v2/robot/input_hint$"},
                                                  {"fail", Value::array({"status"})},
                                                  {"warn", Value::array({"body"})}}),
                                    Value::table({{"name", "input_hint_empty"},
                                                  {"path", "^/v2/robot/input_hint$"},
                                                  {"fail", Value::array({"status", "body"})}}),
                                    Value::table({{"name", "intention"},
                                                  {"path", "^/v1/robot/intention$"},
                                                  {"fail", Value::array({"status"})}}),
                                    Value::table({{"name", "query"}, {"fail", Value::array({"status", "body"})}}),
                                })}});
}

}  // namespace

TEST_CASE("a complete exchange yields one verdict as soon as its last side arrives, in any order") {
  testing::StageHarness h(testing::linked_plugin("compare"), one_thread(Value::table({})));
  h.add_comparator("status", std::make_unique<StatusCheck>());
  h.process(replay("r1", 200, "{}"));
  h.process(original("r1", 200, "{}"));
  CHECK(h.emitted().empty());
  CHECK(h.stage().pending() == 1);
  h.process(post("r1", "/v2/robot/query"));
  REQUIRE(h.emitted().size() == 1);
  CHECK(h.stage().pending() == 0);
  Parsed v(h.emitted()[0]);
  CHECK(v.str("id") == "r1");
  CHECK(v.str("verdict") == "match");
  CHECK(v.str("method") == "POST");
  CHECK(v.str("path") == "/v2/robot/query");
  CHECK(v.str("endpoint") == "POST /v2/robot/query");
  CHECK(v.str("rule") == "default");
  CHECK(v.root["original_status"].get_int64().value() == 200);
  CHECK(v.root["replay_status"].get_int64().value() == 200);
  CHECK(v.root["original_latency_ms"].get_double().value() == doctest::Approx(1.0));
  CHECK(v.root["replay_latency_ms"].get_double().value() == doctest::Approx(2.0));
  CHECK(v.checks().size() == 0);
  CHECK(h.emitted()[0]->id == "r1");
}

TEST_CASE("a gRPC call's endpoint is the method it calls, without the POST") {
  testing::StageHarness h(testing::linked_plugin("compare"), one_thread(Value::table({})));
  h.add_comparator("status", std::make_unique<StatusCheck>());
  h.process(msg(Kind::request, "g1",
                "POST /pkg.Catalog/Search HTTP/1.1\r\nhost: a\r\ncontent-type: application/grpc\r\n"
                "content-length: 5\r\n\r\n" + std::string(5, '\0')));
  h.process(original("g1", 200, ""));
  h.process(replay("g1", 200, ""));
  h.process(post("p1", "/pkg.Catalog/Search"));  // the same path without gRPC's content type
  h.process(original("p1", 200, "{}"));
  h.process(replay("p1", 200, "{}"));
  REQUIRE(h.emitted().size() == 2);
  CHECK(Parsed(h.emitted()[0]).str("endpoint") == "/pkg.Catalog/Search");
  CHECK(Parsed(h.emitted()[0]).str("method") == "POST");
  CHECK(Parsed(h.emitted()[1]).str("endpoint") == "POST /pkg.Catalog/Search");
}

TEST_CASE("the seed's rules: status everywhere, input_hint warn vs mismatch, intention lenient") {
  // As pipelines/robot-shadow.toml writes them: the `nonempty` checks are consulted only when
  // the body differs (escalate), as the original hand-written script did.
  Value options = Value::table({{"rule", Value::array({
                                             Value::table({{"name", "input_hint"},
                                                           {"path", "^/v2/robot/input_hint$"},
                                                           {"fail", Value::array({"status"})},
                                                           {"warn", Value::array({"body"})},
                                                           {"escalate", Value::array({"hints"})}}),
                                             Value::table({{"name", "intention"},
                                                           {"path", "^/v1/robot/intention$"},
                                                           {"fail", Value::array({"status"})},
                                                           {"info", Value::array({"body"})},
                                                           {"escalate", Value::array({"intentions"})}}),
                                             Value::table({{"name", "query"},
                                                           {"method", "post"},
                                                           {"path", "^/v2/robot/query$"},
                                                           {"fail", Value::array({"status", "body"})}}),
                                         })}});
  testing::StageHarness h(testing::linked_plugin("compare"), one_thread(options));
  add_seed_comparators(h);
  auto run = [&](const std::string& id, const std::string& path, int s1, const std::string& b1, int s2,
                 const std::string& b2) {
    h.process(post(id, path));
    h.process(original(id, s1, b1));
    h.process(replay(id, s2, b2));
    auto out = h.emitted();
    REQUIRE(!out.empty());
    Parsed p(out.back());
    REQUIRE(p.str("id") == id);
    return p.str("verdict");
  };
  const std::string hints = R"({"results":{"hint_list":["a","b"]}})";
  const std::string other_hints = R"({"results":{"hint_list":["c"]}})";
  const std::string no_hints = R"({"results":{"hint_list":[]}})";
  CHECK(run("h1", "/v2/robot/input_hint", 200, hints, 200, hints) == "match");
  CHECK(run("h2", "/v2/robot/input_hint", 200, hints, 200, other_hints) == "warn");
  CHECK(run("h3", "/v2/robot/input_hint", 200, hints, 200, no_hints) == "mismatch");
  CHECK(run("h4", "/v2/robot/input_hint", 200, hints, 500, hints) == "mismatch");
  CHECK(run("h5", "/v2/robot/input_hint", 200, no_hints, 200, no_hints) == "match");  // equal: never escalated
  CHECK(run("i1", "/v1/robot/intention", 200, R"({"results":{"intention_list":["x"]}})", 200,
            R"({"results":{"intention_list":["y"]}})") == "match");
  CHECK(run("i2", "/v1/robot/intention", 200, R"({"results":{"intention_list":["x"]}})", 200,
            R"({"results":{"intention_list":[]}})") == "mismatch");
  CHECK(run("i3", "/v1/robot/intention", 200, "{}", 404, "{}") == "mismatch");
  CHECK(run("q1", "/v2/robot/query", 200, R"({"a":1})", 200, R"({"a":2})") == "mismatch");
  CHECK(run("q2", "/v2/robot/query", 200, R"({"a":1})", 200, R"({"a":1})") == "match");

  Parsed h3(h.emitted()[2]);
  CHECK(h3.str("endpoint") == "input_hint");
  CHECK(h3.str("rule") == "input_hint");
  auto checks = h3.checks();
  REQUIRE(checks.size() == 2);
  CHECK(std::string(checks.at(0)["comparator"].get_string().value()) == "body");
  CHECK(std::string(checks.at(0)["severity"].get_string().value()) == "warn");
  CHECK(std::string(checks.at(0)["original"].get_string().value()) == hints);
  CHECK(std::string(checks.at(0)["replay"].get_string().value()) == no_hints);
  CHECK(std::string(checks.at(1)["comparator"].get_string().value()) == "hints");
  CHECK(std::string(checks.at(1)["severity"].get_string().value()) == "fail");
  CHECK(std::string(checks.at(1)["path"].get_string().value()) == "results.hint_list");
  CHECK(std::string(checks.at(1)["kind"].get_string().value()) == "empty");
  Parsed i1(h.emitted()[5]);
  REQUIRE(i1.checks().size() == 1);
  CHECK(std::string(i1.checks().at(0)["severity"].get_string().value()) == "info");
}

TEST_CASE("rules are ordered, first match wins, method matches whole and case-insensitively") {
  testing::StageHarness h(testing::linked_plugin("compare"), one_thread(seed_rules()));
  add_seed_comparators(h);
  h.process(post("a", "/v2/robot/input_hint"));
  h.process(original("a", 200, "x"));
  h.process(replay("a", 200, "y"));
  CHECK(Parsed(h.emitted().back()).str("verdict") == "warn");  // the first input_hint rule, not the second
  auto refs = h.stage().comparator_references();
  std::vector<std::string> names;
  for (auto& r : refs) names.push_back(r.name);
  CHECK(names == std::vector<std::string>{"status", "body", "status", "body", "status", "status", "body", "status"});
}

TEST_CASE("missing sides: flush decides every pending join as missing_original / missing_replay") {
  testing::StageHarness h(testing::linked_plugin("compare"), one_thread(Value::table({{"timeout", "1h"}})));
  add_seed_comparators(h);
  h.process(post("no-replay", "/a"));
  h.process(original("no-replay", 200, "{}"));
  h.process(post("no-original", "/b"));
  h.process(replay("no-original", 200, "{}"));
  h.process(post("nothing", "/c"));
  h.process(original("orphan", 200, "{}"));  // its request was filtered upstream
  CHECK(h.emitted().empty());
  CHECK(h.stage().pending() == 4);
  h.flush();
  CHECK(h.stage().pending() == 0);
  auto out = h.emitted();
  REQUIRE(out.size() == 3);
  std::map<std::string, std::string> verdicts;
  for (auto& m : out) {
    Parsed p(m);
    verdicts[p.str("id")] = p.str("verdict");
    CHECK(p.root["expired"].get_bool().value());
  }
  CHECK(verdicts["no-replay"] == "missing_replay");
  CHECK(verdicts["no-original"] == "missing_original");
  CHECK(verdicts["nothing"] == "missing_original");
  CHECK(h.dropped("orphan_response") == 1);
  Parsed p(out[0]);
  CHECK(p.root["replay_status"].is_null());
}

TEST_CASE("a join expires after timeout; a late side is counted, not judged again") {
  testing::StageHarness h(testing::linked_plugin("compare"), one_thread(Value::table({{"timeout", "50ms"}})));
  add_seed_comparators(h);
  h.process(post("slow", "/a"));
  h.process(original("slow", 200, "{}"));
  REQUIRE(h.wait_until([&] { return h.emitted().size() == 1; }, std::chrono::seconds(5)));
  Parsed p(h.emitted()[0]);
  CHECK(p.str("verdict") == "missing_replay");
  h.process(replay("slow", 200, "{}"));
  h.flush();
  CHECK(h.emitted().size() == 1);
  CHECK(h.dropped("late") == 1);
  CHECK(h.stage().pending() == 0);
}

TEST_CASE("a replay with an error is a replay_error verdict carrying the error") {
  testing::StageHarness h(testing::linked_plugin("compare"), one_thread(Value::table({})));
  add_seed_comparators(h);
  h.process(post("e", "/a"));
  h.process(original("e", 200, "{}"));
  h.process(msg(Kind::replay, "e", "", "candidate", 0, "connection refused"));
  REQUIRE(h.emitted().size() == 1);
  Parsed p(h.emitted()[0]);
  CHECK(p.str("verdict") == "replay_error");
  CHECK(p.str("error") == "connection refused");
  CHECK(p.root["sample"]["request"].get_string().value().starts_with("POST /a"));
}

TEST_CASE("max_pending bounds memory: the oldest join is decided early and counted") {
  testing::StageHarness h(testing::linked_plugin("compare"),
                          one_thread(Value::table({{"max_pending", 2}, {"timeout", "1h"}})));
  add_seed_comparators(h);
  h.process(post("1", "/a"));
  h.process(post("2", "/a"));
  h.process(post("3", "/a"));
  CHECK(h.stage().pending() == 2);
  REQUIRE(h.emitted().size() == 1);
  CHECK(h.emitted()[0]->id == "1");
  h.process(original("1", 200, "{}"));  // late for an evicted join
  CHECK(h.dropped("late") == 1);
}

TEST_CASE("table gauges: joins, decided ids, endpoints and paths stay within max_pending and max_paths") {
  testing::StageHarness h(testing::linked_plugin("compare"),
                          one_thread(Value::table({{"max_pending", 3}, {"max_paths", 3}, {"timeout", "1h"},
                                                   {"fail", Value::array({"fields"})}})));
  h.add_comparator("fields", std::make_unique<FieldsCheck>());
  for (int i = 0; i < 10; ++i) h.process(post("w" + std::to_string(i), "/wait"));
  CHECK(h.gauge("table.joins").value() == 3);
  CHECK(h.gauge("pending_joins").value() == 3);
  CHECK(h.counter("joins_evicted").value() == 7);
  CHECK(h.gauge("table.decided").value() == 3);  // the seven evicted, of which the three latest are kept
  // The evicted verdicts aggregate under POST /wait "(missing_...)"; differences at three more
  // paths: the third is not aggregated, and counted.
  h.process(post("d", "/diff"));
  h.process(original("d", 200, R"({"a":1,"b":1,"c":1})"));
  h.process(replay("d", 200, R"({"a":2,"b":2,"c":2})"));
  CHECK(h.gauge("table.paths").value() == 3);
  CHECK(h.counter("paths_untracked").value() == 1);
  CHECK(h.gauge("table.endpoints").value() == 2);  // POST /wait (evicted verdicts), POST /diff
  h.stage().flush();
  CHECK(h.gauge("table.joins").value() == 0);
  CHECK(h.gauge("table.decided").value() == 3);
}

TEST_CASE("duplicates and verdict messages are dropped with reasons") {
  testing::StageHarness h(testing::linked_plugin("compare"), one_thread(Value::table({})));
  add_seed_comparators(h);
  h.process(post("d", "/a"));
  h.process(post("d", "/a"));
  h.process(msg(Kind::verdict, "v", "{}"));
  CHECK(h.dropped("duplicate") == 1);
  CHECK(h.dropped("unexpected_kind") == 1);
}

TEST_CASE("bad input: payloads that are not HTTP still get a verdict, a throwing comparator is a check") {
  testing::StageHarness h(testing::linked_plugin("compare"),
                          one_thread(Value::table({{"fail", Value::array({"status", "throws"})}})));
  add_seed_comparators(h);
  h.add_comparator("throws", std::make_unique<Throwing>());
  h.process(msg(Kind::request, "x", std::string("\x00\xff garbage \xc3", 13)));
  h.process(msg(Kind::response, "x", "not http"));
  h.process(msg(Kind::replay, "x", "HTTP/1.1 200 OK\r\n\r\n", "candidate"));
  REQUIRE(h.emitted().size() == 1);
  Parsed p(h.emitted()[0]);
  CHECK(p.str("verdict") == "mismatch");
  CHECK(p.str("method") == "");
  CHECK(h.failed("comparator_error") == 1);
  bool saw_error = false;
  for (auto c : p.checks()) saw_error |= std::string(c["kind"].get_string().value()) == "error";
  CHECK(saw_error);
}

TEST_CASE("ignore paths are exact: items.id does not silence items.idempotency_key") {
  struct Both : Comparator {
    std::vector<Difference> compare(const Exchange&) const override {
      return {{"items.id", "changed", "1", "2"},
              {"items.idempotency_key", "changed", "a", "b"},
              {"list[3].ts", "changed", "1", "2"}};
    }
  };
  testing::StageHarness h(testing::linked_plugin("compare"),
                          one_thread(Value::table({{"rule", Value::array({Value::table(
                                                     {{"fail", Value::array({"both"})},
                                                      {"ignore", Value::array({"items.id", "list[*].ts"})}})})}})));
  h.add_comparator("both", std::make_unique<Both>());
  h.process(post("i", "/a"));
  h.process(original("i", 200, "{}"));
  h.process(replay("i", 200, "{}"));
  Parsed p(h.emitted()[0]);
  auto checks = p.checks();
  REQUIRE(checks.size() == 1);
  CHECK(std::string(checks.at(0)["path"].get_string().value()) == "items.idempotency_key");
}

TEST_CASE("samples are bounded per endpoint x path; long values are truncated") {
  testing::StageHarness h(testing::linked_plugin("compare"),
                          one_thread(Value::table({{"samples_per_path", 2}, {"value_limit", "64"},
                                        {"fail", Value::array({"status", "body"})}})));
  add_seed_comparators(h);
  for (int i = 0; i < 5; ++i) {
    auto id = "s" + std::to_string(i);
    h.process(post(id, "/a"));
    h.process(original(id, 200, std::string(1000, 'a')));
    h.process(replay(id, 200, std::string(1000, 'b')));
  }
  auto out = h.emitted();
  REQUIRE(out.size() == 5);
  int with_sample = 0;
  for (auto& m : out) {
    Parsed p(m);
    simdjson::dom::element s;
    if (!p.root["sample"].get(s)) ++with_sample;
    auto replay_value = std::string(p.checks().at(0)["replay"].get_string().value());
    CHECK(replay_value.size() < 100);
    CHECK(replay_value.find("(+936 bytes)") != std::string::npos);
  }
  CHECK(with_sample == 2);
}

TEST_CASE("noise cancellation: a field that differs between the baselines is noise, not a mismatch") {
  testing::StageHarness h(testing::linked_plugin("compare"),
                          one_thread(Value::table({{"baseline", "secondary"}, {"fail", Value::array({"fields"})}})));
  h.add_comparator("fields", std::make_unique<FieldsCheck>());
  // "ts" differs on every response of every server (noise); "price" differs only on the
  // candidate, one exchange in four (a real regression); "id" is stable.
  int mismatches = 0, noise_checks = 0, real_price = 0;
  for (int i = 0; i < 200; ++i) {
    auto id = "n" + std::to_string(i);
    auto body = [&](int ts, int price) {
      return "{\"id\":7,\"ts\":" + std::to_string(ts) + ",\"price\":" + std::to_string(price) + "}";
    };
    h.process(post(id, "/quote"));
    h.process(original(id, 200, body(i * 3, 10)));
    h.process(replay(id, 200, body(i * 3 + 1, 10), "secondary"));
    h.process(replay(id, 200, body(i * 3 + 2, i % 4 == 0 ? 11 : 10), "candidate"));
  }
  auto out = h.emitted();
  REQUIRE(out.size() == 200);
  for (auto& m : out) {
    Parsed p(m);
    if (p.str("verdict") == "mismatch") ++mismatches;
    for (auto c : p.checks()) {
      std::string path(c["path"].get_string().value());
      std::string severity(c["severity"].get_string().value());
      if (path == "ts") {
        CHECK(severity == "noise");
        ++noise_checks;
        CHECK(c["noise"]["baseline"].get_uint64().value() > 0);
      }
      if (path == "price") {
        CHECK(severity == "fail");
        ++real_price;
      }
    }
  }
  CHECK(noise_checks == 200);
  CHECK(real_price == 50);
  CHECK(mismatches == 50);
}

TEST_CASE("noise cancellation: a field that differs as often on the candidate as on the baseline is noise") {
  testing::StageHarness h(testing::linked_plugin("compare"),
                          one_thread(Value::table({{"baseline", "secondary"}, {"fail", Value::array({"fields"})}})));
  h.add_comparator("fields", std::make_unique<FieldsCheck>());
  // "rank" flips on about a third of the responses of either copy: after a short warm-up the
  // candidate's flips are indistinguishable from the baseline's.
  int late_mismatches = 0;
  for (int i = 0; i < 300; ++i) {
    auto id = "r" + std::to_string(i);
    h.process(post(id, "/q"));
    h.process(original(id, 200, R"({"rank":0})"));
    h.process(replay(id, 200, i % 3 == 0 ? R"({"rank":1})" : R"({"rank":0})", "secondary"));
    h.process(replay(id, 200, i % 3 == 1 ? R"({"rank":1})" : R"({"rank":0})", "candidate"));
    if (i >= 30 && Parsed(h.emitted().back()).str("verdict") == "mismatch") ++late_mismatches;
  }
  CHECK(late_mismatches == 0);
}

TEST_CASE("configuration errors point at the option") {
  auto& def = testing::linked_plugin("compare");
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"rule", Value::array({Value::table({{"path", "("}})})}})),
                       doctest::Contains("invalid pattern"), ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"rule", Value::array({Value::table({{"path", "/a"}})})}})),
                       doctest::Contains("needs comparators"), ConfigError);
  CHECK_THROWS_WITH_AS(
      testing::StageHarness(def, Value::table({{"rule", Value::array({Value::table(
                                                   {{"fail", "status"}, {"escalate", "hints"}})})}})),
      doctest::Contains("`escalate` is consulted"), ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"max_pending", 0}})), doctest::Contains("at least 1"),
                       ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"max_paths", 0}})), doctest::Contains("at least 1"),
                       ConfigError);
}

TEST_CASE("a verdict holds the leases of every side it joined until it is released") {
  // Request and original response come from one source message (one lease), the replay from
  // the request but with a lease of its own here, so that the verdict must hold two.
  std::weak_ptr<const void> source, other;
  {
    testing::StageHarness h(testing::linked_plugin("compare"), one_thread(Value::table({})));
    h.add_comparator("status", std::make_unique<StatusCheck>());
    auto lease = std::make_shared<int>(1);
    auto replay_lease = std::make_shared<int>(2);
    source = lease;
    other = replay_lease;
    auto with_lease = [](MessagePtr m, std::shared_ptr<const void> l) {
      Message copy(*m);
      copy.lease = std::move(l);
      return share(std::move(copy));
    };
    h.process(with_lease(post("l1", "/a"), lease));
    h.process(with_lease(original("l1", 200, "{}"), lease));
    h.process(with_lease(replay("l1", 200, "{}"), replay_lease));
    lease.reset();
    replay_lease.reset();
    REQUIRE(h.emitted().size() == 1);
    CHECK(h.stage().pending() == 0);  // the join and its sides are gone ...
    CHECK_FALSE(source.expired());    // ... but the verdict holds both leases
    CHECK_FALSE(other.expired());
    h.stop();
  }
  CHECK(source.expired());  // released with the verdict
  CHECK(other.expired());
}

namespace {

// The verdicts by id: verdict and checks, leaving out what depends on timing (samples go to
// the first verdicts of a path, whichever thread judged them first).
std::map<std::string, std::string> verdicts_by_id(const std::vector<MessagePtr>& emitted) {
  std::map<std::string, std::string> out;
  for (const auto& m : emitted) {
    Parsed p(m);
    std::string checks;
    for (auto c : p.checks()) checks += simdjson::to_string(c);
    CHECK_MESSAGE(out.emplace(p.str("id"), p.str("verdict") + " " + checks).second, "two verdicts for " << p.str("id"));
  }
  return out;
}

// Runs 300 exchanges, their sides interleaved across ids, through a compare stage with
// `threads`; returns the verdicts by id once flushed.
std::map<std::string, std::string> run_many(int threads) {
  testing::StageHarness h(testing::linked_plugin("compare"),
                          Value::table({{"threads", threads}, {"fail", Value::array({"status", "fields"})}}));
  h.add_comparator("status", std::make_unique<StatusCheck>());
  h.add_comparator("fields", std::make_unique<FieldsCheck>());
  std::vector<MessagePtr> sides;
  for (int i = 0; i < 300; ++i) {
    std::string id = "x" + std::to_string(i);
    std::string a = R"({"a":)" + std::to_string(i % 7) + R"(,"b":1})";
    std::string b = R"({"a":)" + std::to_string(i % 5) + R"(,"b":)" + std::to_string(i % 3 == 0 ? 2 : 1) + "}";
    sides.push_back(post(id, "/p" + std::to_string(i % 4)));
    if (i % 11 != 0) sides.push_back(original(id, 200, a));  // some never get their original
    sides.push_back(replay(id, i % 13 == 0 ? 500 : 200, b));
  }
  // Sides of one id keep their order; ids interleave.
  std::mt19937 rng(7);
  for (std::size_t i = sides.size() - 1; i > 0; --i) {
    std::size_t j = rng() % (i + 1);
    if (sides[i]->id != sides[j]->id) std::swap(sides[i], sides[j]);
  }
  for (const auto& m : sides) h.process(m);
  h.flush();
  CHECK(h.stage().pending() == 0);
  return verdicts_by_id(h.emitted());
}

}  // namespace

TEST_CASE("threads: exchanges judged on several threads get the verdicts one thread gives") {
  auto one = run_many(1);
  REQUIRE(one.size() == 300);
  CHECK(run_many(4) == one);
  CHECK(run_many(0) == one);  // one per core
}

TEST_CASE("threads: every id is judged once; late and duplicate sides are counted in their shard") {
  testing::StageHarness h(testing::linked_plugin("compare"), Value::table({{"threads", 3}, {"timeout", "1h"}}));
  add_seed_comparators(h);
  for (int i = 0; i < 40; ++i) {
    std::string id = "d" + std::to_string(i);
    h.process(post(id, "/a"));
    h.process(original(id, 200, "{}"));
    h.process(original(id, 200, "{}"));  // duplicate
  }
  h.flush();  // decides every join: missing_replay
  REQUIRE(h.emitted().size() == 40);
  for (int i = 0; i < 40; ++i) h.process(replay("d" + std::to_string(i), 200, "{}"));
  h.flush();
  CHECK(h.emitted().size() == 40);
  CHECK(h.dropped("duplicate") == 40);
  CHECK(h.dropped("late") == 40);
  for (const auto& m : h.emitted()) CHECK(Parsed(m).str("verdict") == "missing_replay");
}

TEST_CASE("threads: max_pending is shared out among the threads") {
  testing::StageHarness h(testing::linked_plugin("compare"),
                          Value::table({{"threads", 2}, {"max_pending", 4}, {"timeout", "1h"}}));
  add_seed_comparators(h);
  for (int i = 0; i < 20; ++i) h.process(post("m" + std::to_string(i), "/a"));
  // pending() counts the joins and the sides still queued for a thread.
  REQUIRE(h.wait_until([&] {
    std::size_t pending = h.stage().pending();
    return pending <= 4 && h.emitted().size() + pending == 20;
  }));
  CHECK(h.emitted().size() >= 16);
  CHECK(h.dropped("late") == 0);
  h.flush();
  CHECK(h.emitted().size() == 20);
}

namespace {
// Blocks in compare() until released, to show what goes on meanwhile.
struct Gate : Comparator {
  std::vector<Difference> compare(const Exchange& e) const override {
    if (e.request->id != "slow") return {};
    entered = true;
    std::unique_lock lock(mutex);
    opened.wait(lock, [&] { return open; });
    return {};
  }
  void release() {
    std::lock_guard lock(mutex);
    open = true;
    opened.notify_all();
  }
  mutable std::mutex mutex;
  mutable std::condition_variable opened;
  mutable bool open = false;
  mutable std::atomic<bool> entered{false};
};
}  // namespace

TEST_CASE("comparators run outside the stage's locks: a slow one holds up neither the stage nor other ids") {
  for (int threads : {1, 4}) {
    CAPTURE(threads);
    testing::StageHarness h(testing::linked_plugin("compare"),
                            Value::table({{"threads", threads}, {"fail", Value::array({"gate"})}}));
    auto gate = std::make_unique<Gate>();
    Gate& g = *gate;
    h.add_comparator("gate", std::move(gate));
    h.start();
    std::thread feeder([&] {
      h.process(post("slow", "/a"));
      h.process(original("slow", 200, "{}"));
      h.process(replay("slow", 200, "{}"));
      if (threads == 1) return;
      for (int i = 0; i < 16; ++i) {
        std::string id = "fast" + std::to_string(i);
        h.process(post(id, "/a"));
        h.process(original(id, 200, "{}"));
        h.process(replay(id, 200, "{}"));
      }
    });
    REQUIRE(h.wait_until([&] { return g.entered.load(); }));
    // The join was taken out of its table before it was judged: nothing pending, no lock held.
    auto pending = std::async(std::launch::async, [&] { return h.stage().pending(); });
    REQUIRE(pending.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
    if (threads > 1) CHECK(h.wait_until([&] { return !h.emitted().empty(); }));  // other shards go on
    g.release();
    feeder.join();
    h.flush();
    CHECK(h.emitted().size() == (threads == 1 ? 1u : 17u));
  }
}
