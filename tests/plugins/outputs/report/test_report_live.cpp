// The report's live view (`listen`): the page and its JSON API answered from the current model,
// bad parameters, configuration errors, a port in use, and stopping with clients connected.
#include <doctest/doctest.h>
#include <simdjson.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "doppel/testing.hpp"
#include "http_test_client.hpp"
#include "report_output.hpp"
#include "report_verdicts.hpp"

using namespace doppel;
using namespace doppel::report_test;
using doppel::testing::Client;
using doppel::testing::http_body;
using doppel::testing::http_get;
namespace fs = std::filesystem;

namespace {

std::uint16_t live_port(testing::StageHarness& h) {
  h.start();
  auto at = dynamic_cast<plugins::ReportOutput&>(h.stage()).live_endpoint();
  REQUIRE(at);
  return at->port();
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// The JSON body of a GET, parsed; `status` receives the status line.
simdjson::dom::element get_json(simdjson::dom::parser& parser, std::uint16_t port, std::string_view target,
                                std::string* status = nullptr) {
  std::string response = http_get(port, target);
  if (status) *status = response.substr(0, response.find("\r\n"));
  CHECK_MESSAGE(contains(response, "Content-Type: application/json\r\n"), response.substr(0, 200));
  simdjson::dom::element root;
  auto error = parser.parse(http_body(response)).get(root);
  REQUIRE_MESSAGE(!error, response.substr(0, 300));
  return root;
}

std::uint64_t summary_total(std::uint16_t port) {
  simdjson::dom::parser parser;
  return get_json(parser, port, "/api/summary")["totals"]["total"].get_uint64().value();
}

}  // namespace

TEST_CASE("live view: the page, the summary, the paths and the samples of the model as it is now") {
  testing::StageHarness h(testing::linked_plugin("report"),
                          Value::table({{"listen", "127.0.0.1:0"}, {"summary", false}, {"title", "robot live"},
                                        {"fail_if", Value::array({"mismatch_rate > 1%", "total < 1"})}}));
  std::uint16_t port = live_port(h);
  REQUIRE(port != 0);

  // Before any verdict: an empty report, already live.
  std::string page = http_get(port, "/");
  CHECK(page.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(contains(page, "Content-Type: text/html; charset=utf-8\r\n"));
  CHECK(contains(page, "\"total\":0"));
  CHECK(contains(page, "const every = 5000;"));  // the in-place refresh, every live_refresh
  CHECK(contains(page, "data-live-updates"));
  CHECK(contains(page, "window.doppelReport = {render, viewState};"));
  simdjson::dom::parser parser;
  auto empty = get_json(parser, port, "/api/summary");
  CHECK(empty["totals"]["total"].get_uint64().value() == 0);
  CHECK(empty["totals"]["match_rate"].is_null());
  CHECK(empty["last_verdict"].is_null());
  CHECK(empty["goals"].at(0)["value"].is_null());
  CHECK(empty["goals"].at(1)["missed"].get_bool().value());  // "total < 1" holds on an empty run

  feed(h);
  // Renderings are kept up to a second while verdicts keep coming: poll, within bounds.
  REQUIRE(h.wait_until([&] { return summary_total(port) == 100; }, std::chrono::seconds(5)));
  auto summary = get_json(parser, port, "/api/summary");
  CHECK(std::string_view(summary["title"].get_string().value()) == "robot live");
  CHECK(summary["totals"]["match"].get_uint64().value() == 90);
  CHECK(summary["totals"]["mismatch"].get_uint64().value() == 3);
  CHECK(summary["totals"]["mismatch_rate"].get_double().value() == doctest::Approx(0.03));
  CHECK(summary["totals"]["latency"]["replay"]["count"].get_uint64().value() == 99);  // not the replay error
  CHECK(std::string_view(summary["started"].get_string().value()).ends_with("Z"));
  CHECK(summary["last_verdict"].is_string());
  auto goal = summary["goals"].at(0);
  CHECK(std::string_view(goal["condition"].get_string().value()) == "mismatch_rate > 1%");
  CHECK(goal["value"].get_double().value() == doctest::Approx(0.03));
  CHECK(std::string_view(goal["shown"].get_string().value()) == "3%");
  CHECK(goal["missed"].get_bool().value());
  CHECK(summary["endpoints"].get_array().size() == 3);
  bool input_hint_seen = false;
  for (auto endpoint : summary["endpoints"].get_array()) {
    if (std::string_view(endpoint["name"].get_string().value()) != "input_hint") continue;
    input_hint_seen = true;
    CHECK(endpoint["totals"]["total"].get_uint64().value() == 38);
    CHECK(endpoint["paths"].get_uint64().value() == 3);  // body:[0], hints:hint_list, status:status
  }
  CHECK(input_hint_seen);

  // The page carries the same numbers.
  page = http_get(port, "/");
  CHECK(contains(page, "\"total\":100"));
  CHECK(contains(page, "<title>robot live</title>"));

  // Paths of one endpoint, most frequent first; all of them without `endpoint`.
  auto paths = get_json(parser, port, "/api/paths?endpoint=input_hint");
  CHECK(std::string_view(paths["endpoint"].get_string().value()) == "input_hint");
  auto list = paths["paths"].get_array();
  REQUIRE(list.size() == 3);
  CHECK(std::string_view(list.at(0)["path"].get_string().value()) == "results.hint_list[0]");
  CHECK(list.at(0)["count"].get_uint64().value() == 5);
  CHECK(list.at(0)["samples"].get_uint64().value() == 2);  // the verdicts that carried one
  auto all = get_json(parser, port, "/api/paths");
  CHECK(all["endpoint"].is_null());
  CHECK(all["paths"].get_array().size() == 5);  // and query's replay_error, intention's missing_replay

  // Samples of endpoint x path, the parameters percent-decoded ("[0]" sent as %5B0%5D).
  auto samples = get_json(parser, port, "/api/samples?endpoint=input_hint&path=results.hint_list%5B0%5D");
  CHECK(std::string_view(samples["path"].get_string().value()) == "results.hint_list[0]");
  auto by = samples["comparators"].get_array();
  REQUIRE(by.size() == 1);
  CHECK(std::string_view(by.at(0)["comparator"].get_string().value()) == "body");
  CHECK(by.at(0)["warn"].get_uint64().value() == 5);
  CHECK(by.at(0)["samples"].get_array().size() == 2);
  auto first = by.at(0)["samples"].at(0);
  CHECK(std::string_view(first["verdict"].get_string().value()) == "warn");
  CHECK(std::string_view(first["replay_value"].get_string().value()) == "\"sports\"");
  CHECK(contains(std::string(first["request"].get_string().value()), "\"robot_id\":\"664\""));
  // A replay error is listed under its verdict, at the empty path.
  auto errors = get_json(parser, port, "/api/samples?endpoint=query&path=");
  CHECK(std::string_view(errors["comparators"].at(0)["comparator"].get_string().value()) == "(replay_error)");
  CHECK(std::string_view(errors["comparators"].at(0)["samples"].at(0)["replay_value"].get_string().value()) ==
        "connection refused");
  // `comparator` narrows the answer to one comparator's differences.
  std::string status;
  get_json(parser, port, "/api/samples?endpoint=input_hint&path=status&comparator=body", &status);
  CHECK(status == "HTTP/1.1 404 Not Found");

  // The live view follows the model.
  feed(h);
  CHECK(h.wait_until([&] { return summary_total(port) == 200; }, std::chrono::seconds(5)));
  h.stop();
}

TEST_CASE("live view: missing parameters are 400, unknown endpoints and paths 404, with a JSON error") {
  testing::StageHarness h(testing::linked_plugin("report"),
                          Value::table({{"listen", "127.0.0.1:0"}, {"summary", false}}));
  std::uint16_t port = live_port(h);
  feed(h);
  simdjson::dom::parser parser;
  std::string status;
  auto error = [&](std::string_view target) {
    return std::string(get_json(parser, port, target, &status)["error"].get_string().value());
  };
  CHECK(contains(error("/api/samples?endpoint=input_hint"), "missing parameter \"path\""));
  CHECK(status == "HTTP/1.1 400 Bad Request");
  CHECK(contains(error("/api/samples?path=status"), "missing parameter \"endpoint\""));
  CHECK(status == "HTTP/1.1 400 Bad Request");
  CHECK(contains(error("/api/samples"), "/api/samples?endpoint=E&path=P"));
  CHECK(status == "HTTP/1.1 400 Bad Request");
  CHECK(error("/api/samples?endpoint=nope&path=status") ==
        "no endpoint \"nope\" in the report (see /api/summary)");
  CHECK(status == "HTTP/1.1 404 Not Found");
  CHECK(contains(error("/api/samples?endpoint=input_hint&path=results.nope"),
                 "no difference at path \"results.nope\" for endpoint \"input_hint\""));
  CHECK(status == "HTTP/1.1 404 Not Found");
  CHECK(contains(error("/api/paths?endpoint=%3Cscript%3E"), "no endpoint \"<script>\""));
  CHECK(status == "HTTP/1.1 404 Not Found");

  // What the server itself refuses.
  CHECK(http_get(port, "/api/nothing").starts_with("HTTP/1.1 404 Not Found\r\n"));
  CHECK(contains(http_get(port, "/api/nothing"), "served here: /, /api/summary, /api/paths, /api/samples"));
  Client post(port);
  post.send("POST /api/summary HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  CHECK(post.read_all().starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
  Client head(port);
  head.send("HEAD / HTTP/1.1\r\n\r\n");
  std::string answer = head.read_all();
  CHECK(answer.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(answer.ends_with("\r\n\r\n"));  // the length of the page, not the page
  h.stop();
}

TEST_CASE("live view: `listen` and `live_refresh` are checked when the pipeline is configured") {
  auto& def = testing::linked_plugin("report");
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"listen", "8088"}})),
                       "option \"listen\": invalid address \"8088\": no host; write \"127.0.0.1:8088\" for this "
                       "machine only or \":8088\" for every interface",
                       ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"listen", "127.0.0.1:http"}})),
                       doctest::Contains("the port must be a number from 0 (any free port) to 65535, not \"http\""),
                       ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"listen", "::1:8088"}})),
                       doctest::Contains("an IPv6 address goes in brackets"), ConfigError);
  CHECK_THROWS_WITH_AS(
      testing::StageHarness(def, Value::table({{"listen", "127.0.0.1:8088"}, {"live_refresh", "200ms"}})),
      doctest::Contains("live_refresh is at least 1s"), ConfigError);
  // Off by default: nothing listens.
  testing::StageHarness off(def, Value::table({{"summary", false}}));
  off.start();
  CHECK_FALSE(dynamic_cast<plugins::ReportOutput&>(off.stage()).live_endpoint());
  off.stop();
}

TEST_CASE("live view: a port in use fails the start, naming the address, before any file is written") {
  testing::StageHarness first(testing::linked_plugin("report"),
                              Value::table({{"listen", "127.0.0.1:0"}, {"summary", false}}));
  std::uint16_t port = live_port(first);
  auto dir = fs::temp_directory_path() / ("doppel-report-live-taken-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string address = "127.0.0.1:" + std::to_string(port);
  testing::StageHarness second(testing::linked_plugin("report"),
                               Value::table({{"listen", address},
                                             {"summary", false},
                                             {"jsonl", (dir / "v.jsonl").string()},
                                             {"html", (dir / "r.html").string()}}));
  const std::string expected = "output \"under_test\": cannot serve the live report on " + address +
                               ": Address already in use; set `listen` to a free address, or to \"\" to turn the "
                               "live view off";
  CHECK_THROWS_WITH_AS(second.start(), expected.c_str(), std::runtime_error);
  CHECK_FALSE(fs::exists(dir / "v.jsonl"));
  // The first one serves on.
  CHECK(http_get(port, "/api/summary").starts_with("HTTP/1.1 200 OK\r\n"));
  first.stop();
  fs::remove_all(dir);
}

TEST_CASE("live view: stop() closes connections still open, and the port is free again") {
  testing::StageHarness h(testing::linked_plugin("report"),
                          Value::table({{"listen", "127.0.0.1:0"}, {"summary", false}}));
  std::uint16_t port = live_port(h);
  feed(h);
  Client idle(port), halfway(port);
  REQUIRE(idle.connected());
  REQUIRE(halfway.connected());
  halfway.send("GET /api/sum");  // and nothing more
  // Connections are accepted in order: once a later one is answered, both are held.
  CHECK(http_get(port, "/api/summary").starts_with("HTTP/1.1 200 OK\r\n"));
  auto started = std::chrono::steady_clock::now();
  h.stop();
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(2));
  bool closed = false;
  CHECK(idle.read_all(&closed).empty());
  CHECK(closed);
  closed = false;
  CHECK(halfway.read_all(&closed).empty());
  CHECK(closed);
  Client late(port);
  CHECK_FALSE(late.connected());
  // The address can be taken again at once (another run, the same pipeline file).
  testing::StageHarness again(testing::linked_plugin("report"),
                              Value::table({{"listen", "127.0.0.1:" + std::to_string(port)}, {"summary", false}}));
  CHECK(live_port(again) == port);
  again.stop();
}

TEST_CASE("live view: only the served page refreshes itself; the report file stays static") {
  auto dir = fs::temp_directory_path() / ("doppel-report-live-file-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  testing::StageHarness h(testing::linked_plugin("report"),
                          Value::table({{"listen", "127.0.0.1:0"}, {"live_refresh", "2s"}, {"summary", false},
                                        {"html", (dir / "r.html").string()}}));
  std::uint16_t port = live_port(h);
  feed(h);
  h.flush();
  std::ifstream in(dir / "r.html");
  std::stringstream file;
  file << in.rdbuf();
  CHECK(contains(file.str(), "\"total\":100"));
  CHECK_FALSE(contains(file.str(), "data-live-updates"));
  CHECK_FALSE(contains(file.str(), "fetch("));
  std::string page = http_get(port, "/");
  CHECK(contains(page, "const every = 2000;"));
  CHECK(contains(page, "run ended / unreachable"));
  h.stop();
  fs::remove_all(dir);
}
