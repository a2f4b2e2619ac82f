#include "core_test_support.hpp"

using namespace doppel;
using namespace doppel::core;
using doppel::core::testing::build;

namespace {
// "p.toml:LINE:COL: message" for the error whose message contains `needle`.
std::string located(const testing::Built& b, const std::string& needle) {
  for (const auto& e : b.errors)
    if (std::string(e.what()).find(needle) != std::string::npos) return e.position().to_string() + ": " + e.what();
  return "(no error containing \"" + needle + "\"; got:\n" + b.error_text() + ")";
}
}  // namespace

TEST_CASE("a valid pipeline builds, with edges typed by the kinds they carry") {
  auto b = build(R"(
[pipeline]
name = "ok"
[inputs.src]
plugin = "canned"
[filters.keep]
plugin = "keep"
from = ["src"]
contains = "GET"
[outputs.out]
plugin = "collect"
from = ["keep"]
path = "/dev/null"
)");
  REQUIRE_MESSAGE(b.graph, b.error_text());
  int src = b.graph->find("src"), keep = b.graph->find("keep");
  REQUIRE(b.graph->stages[src].downstream.size() == 1);
  CHECK(b.graph->stages[src].downstream[0].to == keep);
  CHECK(b.graph->stages[src].downstream[0].kinds == KindSet::http());
}

TEST_CASE("TOML syntax errors carry line and column") {
  auto b = build("[pipeline]\nname = \"x\"\n[inputs.a\nplugin = 1\n");
  REQUIRE(b.errors.size() == 1);
  CHECK(b.errors[0].position().line == 3);
  CHECK(b.errors[0].position().column > 1);
  CHECK(std::string(b.errors[0].what()).find("TOML syntax error") == 0);
}

TEST_CASE("every error class is reported at once, each at its line and column") {
  auto b = build(R"([pipeline]
stats_intervl = "5s"
[inputs.src]
plugin = "caned"
[filters.a]
plugin = "keep"
from = ["src"]
contain = "x"
[filters.b]
plugin = "keep"
from = ["srcc"]
contains = 5
[filters.c]
plugin = "keep"
from = ["a"]
[outputs.out]
plugin = "keep"
from = ["b"]
[sinks.x]
plugin = "collect"
)");
  CHECK(b.graph == nullptr);
  CHECK(located(b, "stats_intervl") ==
        "p.toml:2:1: unknown option \"stats_intervl\"; did you mean \"stats_interval\"? (allowed: name, plugin_dirs, "
        "queue_capacity, queue_bytes, stats_interval, drain_timeout, decision_ttl, decision_capacity, metrics, exit_after, "
            "user)");
  CHECK(located(b, "caned") ==
        "p.toml:4:1: unknown input plugin \"caned\"; did you mean \"canned\"? (available inputs: canned)");
  CHECK(located(b, "\"contain\"") == "p.toml:8:1: unknown option \"contain\"; did you mean \"contains\"? (allowed: contains)");
  CHECK(located(b, "srcc") ==
        "p.toml:11:9: `from` names \"srcc\", which is not a stage; did you mean \"src\"? (stages: src, a, b, c, out)");
  CHECK(located(b, "must be a string") == "p.toml:12:1: option \"contains\" must be a string, not integer 5");
  CHECK(located(b, "missing required option") ==
        "p.toml:5:1: missing required option \"contains\" (string: Substring to keep)");
  CHECK(b.error_text().find("p.toml:13:1: missing required option \"contains\"") != std::string::npos);
  CHECK(located(b, "is a filter plugin").find("p.toml:17:1: unknown output plugin \"keep\"") == 0);
  CHECK(located(b, "unknown section") ==
        "p.toml:19:1: unknown section [sinks] (sections: pipeline, inputs, filters, "
        "middleware, outputs, comparators, tests)");
}

TEST_CASE("a stage fed kinds it does not accept is refused at the from entry") {
  auto b = build(R"([inputs.src]
plugin = "canned"
[outputs.v]
plugin = "verdicts"
from = ["src"]
)");
  CHECK(located(b, "reads \"src\"") ==
        "p.toml:5:9: stage \"v\" (plugin verdicts, accepts {verdict}) reads \"src\", which emits only {request, "
        "response, replay}");
}

TEST_CASE("an output that emits nothing cannot feed another stage") {
  auto b = build(R"([inputs.src]
plugin = "canned"
[outputs.out]
plugin = "collect"
from = ["src"]
path = "/dev/null"
[middleware.m]
plugin = "relay"
from = ["out"]
[outputs.o2]
plugin = "collect"
from = ["m"]
path = "/dev/null"
)");
  CHECK(located(b, "emits nothing").find("p.toml:9:9: stage \"m\"") == 0);
  CHECK(located(b, "emits nothing").find("track_response = true") != std::string::npos);
}

TEST_CASE("a stage whose messages nobody reads is refused") {
  auto b = build(R"([inputs.src]
plugin = "canned"
[filters.lonely]
plugin = "keep"
from = ["src"]
contains = "x"
)");
  CHECK(located(b, "nobody") == "(no error containing \"nobody\"; got:\n" + b.error_text() + ")");
  CHECK(located(b, "no stage reads it") ==
        "p.toml:3:1: stage \"lonely\" emits {request, response, replay} but no stage reads it: add it to a `from` "
        "list, or remove it");
  auto tracked = build(R"([inputs.src]
plugin = "canned"
[outputs.out]
plugin = "collect"
from = ["src"]
path = "/dev/null"
track = true
)");
  CHECK(located(tracked, "no stage reads it").find("p.toml:3:1: stage \"out\" emits {replay}") == 0);
}

TEST_CASE("the GoReplay middleware loop is legal; a loop a request could circle is not") {
  auto legal = build(R"([inputs.capture]
plugin = "canned"
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
path = "/dev/null"
)");
  REQUIRE_MESSAGE(legal.graph, legal.error_text());
  int mw = legal.graph->find("mw"), target = legal.graph->find("target");
  bool closing = false;
  for (const auto& e : legal.graph->stages[target].downstream)
    if (e.to == mw) closing = e.closes_loop;
  for (const auto& e : legal.graph->stages[mw].downstream)
    if (e.to == target) CHECK(e.kinds.contains(Kind::request));
  CHECK(closing);

  auto circling = build(R"([inputs.capture]
plugin = "canned"
[middleware.a]
plugin = "relay"
from = ["capture", "b"]
[middleware.b]
plugin = "relay"
from = ["a"]
[outputs.sink]
plugin = "collect"
from = ["b"]
path = "/dev/null"
)");
  CHECK(located(circling, "round forever").find("loop a -> b -> a would carry request messages") != std::string::npos);
  CHECK(located(circling, "round forever").find("p.toml:5:1:") == 0);
}

TEST_CASE("a plugin that throws while configuring fails validation with its stage name") {
  auto b = build(R"([inputs.src]
plugin = "canned"
[filters.moon]
plugin = "explode"
from = ["src"]
fail_configure = true
[filters.limits]
plugin = "explode"
from = ["moon"]
limit = 0
[outputs.out]
plugin = "collect"
from = ["limits"]
path = "/dev/null"
)");
  CHECK(located(b, "moon") ==
        "p.toml:3:1: stage \"moon\" (plugin explode) failed to configure: cannot reach the moon");
  CHECK(located(b, "limit must") == "p.toml:10:1: limit must be positive (in filters.limits)");
}

TEST_CASE("inputs take no from; other stages need one; stage names are unique") {
  auto b = build(R"([inputs.src]
plugin = "canned"
from = ["x"]
[filters.f]
plugin = "keep"
contains = "a"
[outputs.f]
plugin = "collect"
from = ["src"]
path = "/dev/null"
)");
  CHECK(located(b, "remove `from`").find("p.toml:3:1:") == 0);
  CHECK(located(b, "needs `from").find("p.toml:4:1:") == 0);
  CHECK(located(b, "already used").find("p.toml:7:1: stage name \"f\" is already used by [filters.f]") == 0);
}
