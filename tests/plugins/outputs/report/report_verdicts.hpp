#pragma once
// Verdicts as the compare stage writes them, and a realistic stream of them, for the report's
// tests (test_report.cpp, test_report_live.cpp).
#include <string>
#include <vector>

#include "doppel/json_writer.hpp"
#include "doppel/message.hpp"
#include "doppel/testing.hpp"

namespace doppel::report_test {

struct CheckSpec {
  std::string comparator, severity, path, kind, original, replay;
};

// A verdict as the compare stage writes it.
inline MessagePtr verdict(const std::string& id, const std::string& v, const std::string& endpoint, double orig_ms,
                          double replay_ms, std::vector<CheckSpec> checks = {}, bool sample = false) {
  JsonWriter w;
  w.begin_object();
  w.field("id", id).field("verdict", v).field("endpoint", endpoint).field("rule", endpoint);
  w.field("method", "POST").field("path", "/" + endpoint).field("target", "/" + endpoint);
  w.field("original_status", 200).field("replay_status", v == "mismatch" ? 500 : 200);
  w.field("original_latency_ms", orig_ms).field("replay_latency_ms", replay_ms);
  w.field("expired", false);
  w.key("checks").begin_array();
  for (const auto& c : checks) {
    w.begin_object().field("comparator", c.comparator).field("severity", c.severity).field("path", c.path);
    w.field("kind", c.kind).field("original", c.original).field("replay", c.replay).end_object();
  }
  w.end_array();
  if (sample) {
    w.key("sample").begin_object();
    w.field("request", "POST /" + endpoint + " HTTP/1.1\r\nHost: robot\r\n\r\n{\"robot_id\":\"664\",\"q\":\"</script><b>x\"}");
    w.field("original", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
                        "{\"results\":{\"hint_list\":[\"weather\",\"news\"],\"score\":0.91,\"trace_id\":\"a1\"}}");
    w.field("replay", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
                      "{\"results\":{\"hint_list\":[],\"score\":0.91,\"trace_id\":\"b2\"}}");
    w.end_object();
  }
  w.end_object();
  return share(Message(Kind::verdict, id, 0, w.take()));
}

// 100 verdicts over three endpoints: 90 match, 5 warn, 3 mismatch, 1 replay_error, 1 missing_replay.
inline void feed(testing::StageHarness& h) {
  int n = 0;
  auto id = [&] { return "id" + std::to_string(n++); };
  for (int i = 0; i < 90; ++i)
    h.process(verdict(id(), "match", i % 3 == 0 ? "query" : i % 3 == 1 ? "input_hint" : "intention", 10 + i % 7,
                      12 + i % 11));
  for (int i = 0; i < 5; ++i)
    h.process(verdict(id(), "warn", "input_hint", 20, 30,
                      {{"body", "warn", "results.hint_list[0]", "changed", "\"weather\"", "\"sports\""}}, i < 2));
  for (int i = 0; i < 3; ++i)
    h.process(verdict(id(), "mismatch", "input_hint", 20, 90,
                      {{"hints", "fail", "results.hint_list", "empty", "[\"weather\",\"news\"]", "[]"},
                       {"status", "fail", "status", "changed", "200", "500"}},
                      true));
  JsonWriter err;
  err.begin_object().field("id", id()).field("verdict", "replay_error").field("endpoint", "query");
  err.field("error", "connection refused").key("checks").begin_array().end_array().end_object();
  h.process(share(Message(Kind::verdict, "e", 0, err.take())));
  h.process(verdict(id(), "missing_replay", "intention", 10, 0));
}

}  // namespace doppel::report_test
