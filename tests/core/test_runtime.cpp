#include <algorithm>
#include <cstdio>

#include "core_test_support.hpp"
#include "decision_memory.hpp"
#include "runtime.hpp"

using namespace doppel;
using namespace doppel::core;
using doppel::core::testing::build;

namespace {
std::string collect_to(const std::string& name) { return (testing::temp_dir() / name).string(); }

StageRunner::Snapshot snapshot_of(const Runtime& r, const std::string& stage) {
  for (const auto& s : r.snapshots())
    if (s.name == stage) return s;
  FAIL("no stage " << stage);
  return {};
}

std::uint64_t value_of(const std::vector<std::pair<std::string, std::uint64_t>>& list, const std::string& key) {
  for (const auto& [k, v] : list)
    if (k == key) return v;
  return 0;
}

void run_to_end(Runtime& r) {
  r.start();
  r.wait_for_inputs();
  r.drain_and_stop();
}
}  // namespace

TEST_CASE("a response follows its request's fate through a filter") {
  std::string out = collect_to("follow.txt");
  auto b = build(R"([pipeline]
stats_interval = "0s"
[inputs.src]
plugin = "canned"
messages = [
  { kind = "request", id = "a", payload = "GET /keep HTTP/1.1\r\n\r\n" },
  { kind = "response", id = "a", payload = "HTTP/1.1 200 OK\r\n\r\n" },
  { kind = "request", id = "b", payload = "GET /other HTTP/1.1\r\n\r\n" },
  { kind = "response", id = "b", payload = "HTTP/1.1 200 OK\r\n\r\n" },
  { kind = "replay", id = "b", payload = "HTTP/1.1 200 OK\r\n\r\n" },
  { kind = "response", id = "unseen", payload = "HTTP/1.1 200 OK\r\n\r\n" },
]
[filters.keep]
plugin = "keep"
from = ["src"]
contains = "/keep"
[outputs.out]
plugin = "collect"
from = ["keep"]
path = ")" + out + R"("
)");
  REQUIRE_MESSAGE(b.graph, b.error_text());
  Runtime r(*b.graph);
  run_to_end(r);
  CHECK(testing::read_lines(out) ==
        std::vector<std::string>{"request a src", "response a src", "response unseen src"});
  auto keep = snapshot_of(r, "keep");
  CHECK(keep.in == 6);
  CHECK(keep.out == 3);
  CHECK(value_of(keep.drops, "not_kept") == 1);
  CHECK(value_of(keep.drops, "request_dropped") == 2);
  CHECK(value_of(keep.counters, "responses_without_request") == 1);
  CHECK(r.summary().find("dropped request_dropped: 2") != std::string::npos);
  CHECK(r.prometheus_metrics().find("doppel_stage_dropped_total{stage=\"keep\",reason=\"not_kept\"} 1") !=
        std::string::npos);
}

TEST_CASE("decision memory: bounded by decision_capacity (the oldest forgotten, counted) and by decision_ttl") {
  DecisionMemory memory(10, 3);
  for (int i = 0; i < 5; ++i) memory.remember("id" + std::to_string(i), i % 2 == 0, 0);
  CHECK(memory.size() == 3);
  CHECK(memory.evicted() == 2);
  CHECK_FALSE(memory.lookup("id0", 1).has_value());
  CHECK(memory.lookup("id4", 1) == true);
  CHECK(memory.lookup("id3", 1) == false);
  memory.remember("id3", true, 5);  // remembered again: one entry, the new decision, a later expiry
  CHECK(memory.size() == 3);
  CHECK(memory.lookup("id3", 9) == true);
  CHECK_FALSE(memory.lookup("id2", 10).has_value());  // expired at 0 + 10
  CHECK(memory.size() == 2);
  // id3 keeps its place, so id4 (expired at 10 too) waits behind it until 15: at most ttl later.
  CHECK(memory.lookup("id3", 14) == true);
  CHECK(memory.size() == 2);
  CHECK_FALSE(memory.lookup("id3", 15).has_value());
  CHECK(memory.size() == 0);
  CHECK(memory.evicted() == 2);  // expiry is not eviction
}

TEST_CASE("a filter's decision memory shows its size, its bound and its evictions") {
  std::string out = collect_to("decisions.txt");
  auto b = build(R"([pipeline]
stats_interval = "0s"
decision_capacity = 2
decision_ttl = "1h"
[inputs.src]
plugin = "canned"
messages = [
  { kind = "request", id = "a", payload = "GET /keep HTTP/1.1\r\n\r\n" },
  { kind = "request", id = "b", payload = "GET /keep HTTP/1.1\r\n\r\n" },
  { kind = "request", id = "c", payload = "GET /drop HTTP/1.1\r\n\r\n" },
  { kind = "request", id = "d", payload = "GET /keep HTTP/1.1\r\n\r\n" },
  { kind = "response", id = "a", payload = "HTTP/1.1 200 OK\r\n\r\n" },
  { kind = "response", id = "c", payload = "HTTP/1.1 200 OK\r\n\r\n" },
]
[filters.keep]
plugin = "keep"
from = ["src"]
contains = "/keep"
[outputs.out]
plugin = "collect"
from = ["keep"]
path = ")" + out + R"("
)");
  REQUIRE_MESSAGE(b.graph, b.error_text());
  Runtime r(*b.graph);
  run_to_end(r);
  auto keep = snapshot_of(r, "keep");
  CHECK(value_of(keep.counters, "decisions_evicted") == 2);  // a and b: their responses pass as unjudged
  CHECK(value_of(keep.counters, "responses_without_request") == 1);  // a's
  CHECK(value_of(keep.drops, "request_dropped") == 1);               // c's: still remembered
  CHECK(keep.decisions == std::optional<std::size_t>(2));
  CHECK_FALSE(snapshot_of(r, "out").decisions.has_value());
  std::string metrics = r.prometheus_metrics();
  CHECK(metrics.find("doppel_stage_decisions{stage=\"keep\"} 2\n") != std::string::npos);
  CHECK(metrics.find("doppel_decision_capacity 2\n") != std::string::npos);
  CHECK(metrics.find("doppel_decision_ttl_seconds 3600\n") != std::string::npos);
}

TEST_CASE("a stage that throws on one message has it counted as failed, and the pipeline goes on") {
  std::string out = collect_to("explode.txt");
  auto b = build(R"([pipeline]
stats_interval = "0s"
[inputs.src]
plugin = "canned"
messages = [
  { id = "1", payload = "GET /a HTTP/1.1\r\n\r\n" },
  { id = "2", payload = "GET /boom HTTP/1.1\r\n\r\n" },
  { id = "3", payload = "GET /c HTTP/1.1\r\n\r\n" },
]
[filters.x]
plugin = "explode"
from = ["src"]
[outputs.out]
plugin = "collect"
from = ["x"]
path = ")" + out + R"("
)");
  REQUIRE_MESSAGE(b.graph, b.error_text());
  Runtime r(*b.graph);
  run_to_end(r);
  CHECK(testing::read_lines(out) == std::vector<std::string>{"request 1 src", "request 3 src"});
  CHECK(value_of(snapshot_of(r, "x").failures, "exception") == 1);
}

TEST_CASE("the middleware loop drains: every request's replay comes back round") {
  std::string out = collect_to("loop.txt");
  auto b = build(R"([pipeline]
stats_interval = "0s"
[inputs.capture]
plugin = "canned"
repeat = 200
messages = [ { id = "r", payload = "GET /a HTTP/1.1\r\n\r\n" } ]
[middleware.mw]
plugin = "relay"
from = ["capture", "target"]
[outputs.target]
plugin = "collect"
from = ["mw"]
path = "/dev/null"
track = true
[outputs.sink]
plugin = "collect"
from = ["mw"]
path = ")" + out + R"("
)");
  REQUIRE_MESSAGE(b.graph, b.error_text());
  Runtime r(*b.graph);
  run_to_end(r);
  auto lines = testing::read_lines(out);
  CHECK(lines.size() == 400);
  CHECK(std::count_if(lines.begin(), lines.end(), [](auto& l) { return l.starts_with("replay r-") && l.ends_with(" target"); }) == 200);
  CHECK(r.total_dropped() == 0);
}

TEST_CASE("file inputs wait on a full queue; live inputs drop and count") {
  std::string out = collect_to("pressure.txt");
  // One message at a time, and in batches larger than the queue (emit_batch).
  std::string batch = "1";
  SUBCASE("emit") { batch = "1"; }
  SUBCASE("emit_batch") { batch = "100"; }
  auto make = [&](bool live) {
    return build(std::string(R"([pipeline]
stats_interval = "0s"
queue_capacity = 1
[inputs.src]
plugin = "canned"
repeat = 20000
batch = )") + batch + R"(
live = )" + (live ? "true" : "false") + R"(
messages = [ { id = "m", payload = "GET /a HTTP/1.1\r\n\r\n" } ]
[middleware.slow]
plugin = "relay"
from = ["src"]
[outputs.out]
plugin = "collect"
from = ["slow"]
path = ")" + out + R"("
)");
  };
  auto waiting = make(false);
  REQUIRE_MESSAGE(waiting.graph, waiting.error_text());
  {
    Runtime r(*waiting.graph);
    run_to_end(r);
    CHECK(testing::read_lines(out).size() == 20000);
    CHECK(r.total_dropped() == 0);
  }
  auto dropping = make(true);
  REQUIRE(dropping.graph);
  Runtime r(*dropping.graph);
  run_to_end(r);
  auto slow = snapshot_of(r, "slow");
  // Every message is either delivered or counted as dropped: nothing vanishes.
  CHECK(slow.in + value_of(slow.drops, "queue_full") == 20000);
  CHECK(testing::read_lines(out).size() == slow.in);
}

TEST_CASE("stats line shows per-stage in, out, rates and drops") {
  auto b = build(R"([inputs.src]
plugin = "canned"
messages = [ { id = "1", payload = "GET /x HTTP/1.1\r\n\r\n" } ]
[filters.keep]
plugin = "keep"
from = ["src"]
contains = "/y"
[outputs.out]
plugin = "collect"
from = ["keep"]
path = "/dev/null"
)");
  REQUIRE(b.graph);
  RuntimeOptions quiet;
  quiet.print_stats = false;
  Runtime r(*b.graph, quiet);
  run_to_end(r);
  std::string line = r.stats_line();
  CHECK(line.find("src[out=1 ") != std::string::npos);
  CHECK(line.find("keep[in=1 out=0 0/s dropped=1]") != std::string::npos);
}

TEST_CASE("a kind no downstream stage accepts is counted as unread, never lost silently") {
  auto b = build(R"([pipeline]
stats_interval = "0s"
[inputs.src]
plugin = "canned"
messages = [
  { kind = "request", id = "a", payload = "GET /a HTTP/1.1\r\n\r\n" },
  { kind = "response", id = "a", payload = "HTTP/1.1 200 OK\r\n\r\n" },
  { kind = "response", id = "b", payload = "HTTP/1.1 200 OK\r\n\r\n" },
]
[middleware.m]
plugin = "relay"
from = ["src"]
[outputs.out]
plugin = "requests"
from = ["m"]
path = "/dev/null"
)");
  REQUIRE_MESSAGE(b.graph, b.error_text());
  Runtime r(*b.graph);
  run_to_end(r);
  auto m = snapshot_of(r, "m");
  CHECK(m.out == 3);
  CHECK(value_of(m.counters, "unread_response") == 2);
  CHECK(snapshot_of(r, "out").in == 1);
}

TEST_CASE("emit_batch hands each downstream stage its kinds, in order, and counts the unread") {
  // "all" reads requests and responses (and nobody reads verdicts), or every kind: that edge
  // is then taken without a look at each message's kind. "reqs" sorts out requests either way.
  std::string reader = "collect";
  std::vector<std::string> kinds = {"request", "response"};
  SUBCASE("a reader of http kinds") {}
  SUBCASE("a reader of every kind") {
    reader = "everything";
    kinds.push_back("verdict");
  }
  std::string requests = collect_to("batch-requests.txt"), everything = collect_to("batch-all.txt");
  auto b = build(R"([pipeline]
stats_interval = "0s"
queue_capacity = 4
[inputs.src]
plugin = "canned"
repeat = 50
batch = 7
messages = [
  { kind = "request", id = "a", payload = "GET /a HTTP/1.1\r\n\r\n" },
  { kind = "response", id = "a", payload = "HTTP/1.1 200 OK\r\n\r\n" },
  { kind = "verdict", id = "a", payload = "{}" },
]
[outputs.reqs]
plugin = "requests"
from = ["src"]
path = ")" + requests + R"("
[outputs.all]
plugin = ")" + reader + R"("
from = ["src"]
path = ")" + everything + R"("
)");
  REQUIRE_MESSAGE(b.graph, b.error_text());
  Runtime r(*b.graph);
  run_to_end(r);
  auto request_lines = testing::read_lines(requests);
  auto all_lines = testing::read_lines(everything);
  REQUIRE(request_lines.size() == 50);
  REQUIRE(all_lines.size() == 50 * kinds.size());
  for (std::size_t i = 0; i < 50; ++i) {
    std::string id = "a-" + std::to_string(i);
    CHECK(request_lines[i].find(id) != std::string::npos);
    for (std::size_t k = 0; k < kinds.size(); ++k)
      CHECK(all_lines[kinds.size() * i + k].find(kinds[k] + " " + id) != std::string::npos);
  }
  auto src = snapshot_of(r, "src");
  CHECK(src.out == 150);
  CHECK(value_of(src.counters, "unread_verdict") == (kinds.size() == 3 ? 0 : 50));
  CHECK(snapshot_of(r, "all").in == 50 * kinds.size());
  CHECK(r.total_dropped() == 0);
}

TEST_CASE("a stage's overflow policy follows the inputs that feed it: drop behind a live one, wait behind the rest") {
  auto make = [](const std::string& inputs, const std::string& from) {
    return build(R"([pipeline]
stats_interval = "0s"
)" + inputs + R"(
[filters.keep]
plugin = "keep"
from = )" + from + R"(
contains = "/"
[outputs.out]
plugin = "collect"
from = ["keep"]
path = "/dev/null"
)");
  };
  const std::string file_input = R"([inputs.file]
plugin = "canned"
messages = [ { payload = "GET / HTTP/1.1\r\n\r\n" } ]
)";
  const std::string live_input = R"([inputs.live]
plugin = "canned"
live = true
messages = [ { payload = "GET / HTTP/1.1\r\n\r\n" } ]
)";
  auto policy = [](const testing::Built& b, const std::string& stage) {
    return b.graph->stages[b.graph->find(stage)].overflow;
  };
  SUBCASE("only an input that can wait") {
    auto b = make(file_input, R"(["file"])");
    REQUIRE_MESSAGE(b.graph, b.error_text());
    CHECK(policy(b, "file") == OverflowPolicy::block);
    CHECK(policy(b, "keep") == OverflowPolicy::block);
    CHECK(policy(b, "out") == OverflowPolicy::block);
  }
  SUBCASE("a live input, two stages upstream") {
    auto b = make(live_input, R"(["live"])");
    REQUIRE_MESSAGE(b.graph, b.error_text());
    CHECK(policy(b, "live") == OverflowPolicy::drop);
    CHECK(policy(b, "keep") == OverflowPolicy::drop);
    CHECK(policy(b, "out") == OverflowPolicy::drop);
  }
  SUBCASE("both: the live one decides") {
    auto b = make(file_input + live_input, R"(["file", "live"])");
    REQUIRE_MESSAGE(b.graph, b.error_text());
    CHECK(policy(b, "file") == OverflowPolicy::block);
    CHECK(policy(b, "out") == OverflowPolicy::drop);
    CHECK(b.graph->stages[b.graph->find("out")].fed_by.size() == 2);
  }
}

TEST_CASE("a run that lost messages says so at exit: how many, of how many, where and why") {
  auto b = build(R"([pipeline]
stats_interval = "0s"
queue_capacity = 1
[inputs.src]
plugin = "canned"
repeat = 20000
live = true
messages = [ { id = "m", payload = "GET /a HTTP/1.1\r\n\r\n" } ]
[filters.keep]
plugin = "keep"
from = ["src"]
contains = "/nothing-matches"
[middleware.slow]
plugin = "relay"
from = ["src"]
[outputs.out]
plugin = "collect"
from = ["slow", "keep"]
path = "/dev/null"
)");
  REQUIRE_MESSAGE(b.graph, b.error_text());
  Runtime r(*b.graph);
  run_to_end(r);
  auto slow = snapshot_of(r, "slow");
  std::uint64_t lost = value_of(slow.drops, "queue_full");
  REQUIRE(lost > 0);
  char share[32];
  std::snprintf(share, sizeof share, "(%.1f%%)", 100.0 * static_cast<double>(lost) / 20000.0);
  std::string warnings = r.loss_warnings();
  INFO(warnings);
  CHECK(warnings.find(" of 20,000 messages " + std::string(share) + " dropped at slow: queue_full\n") !=
        std::string::npos);
  CHECK(warnings.rfind("WARNING: ", 0) == 0);
  // The filter's decision is not a loss.
  CHECK(warnings.find("dropped at keep: not_kept") == std::string::npos);

  auto clean = build(R"([pipeline]
stats_interval = "0s"
[inputs.src]
plugin = "canned"
repeat = 100
messages = [ { payload = "GET /a HTTP/1.1\r\n\r\n" } ]
[filters.keep]
plugin = "keep"
from = ["src"]
contains = "/nothing-matches"
[outputs.out]
plugin = "collect"
from = ["keep"]
path = "/dev/null"
)");
  REQUIRE_MESSAGE(clean.graph, clean.error_text());
  Runtime quiet(*clean.graph);
  run_to_end(quiet);
  CHECK(quiet.loss_warnings().empty());
}

TEST_CASE("a queue bounded in bytes takes as many messages as fit, whatever their number") {
  const std::atomic<bool> no_abort{false};
  std::string body(1000, 'x');
  std::uint64_t per = body.size() + BoundedQueue::kMessageOverhead;
  BoundedQueue queue(1000000, per * 10);
  int pushed = 0;
  while (queue.push(share(Message(Kind::request, "m", 0, body)), false, no_abort) == BoundedQueue::Push::ok) ++pushed;
  CHECK(pushed == 10);
  CHECK(queue.bytes() == per * 10);
  std::vector<MessagePtr> out;
  REQUIRE(queue.pop_batch(out, 4));
  CHECK(queue.bytes() == per * 6);
  // One message larger than the whole bound still goes through an empty queue.
  BoundedQueue small(100, 10);
  CHECK(small.push(share(Message(Kind::request, "big", 0, body)), false, no_abort) == BoundedQueue::Push::ok);
  CHECK(small.push(share(Message(Kind::request, "next", 0, "")), false, no_abort) == BoundedQueue::Push::full);
}
