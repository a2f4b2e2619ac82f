#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>

#include "doppel/testing.hpp"
#include "hex_lines.hpp"

using namespace doppel;
using doppel::testing::make_message;
using namespace std::chrono_literals;

namespace {
const PluginDefinition& process_plugin() { return testing::linked_plugin("process"); }

std::string script(const std::string& name, const std::string& body) {
  std::string dir = std::string(std::getenv("DOPPEL_BUILD_DIR") ? std::getenv("DOPPEL_BUILD_DIR") : "/tmp") +
                    "/test-process-middleware";
  std::system(("mkdir -p " + dir).c_str());
  std::string path = dir + "/" + name;
  std::ofstream(path) << "#!/bin/bash\n" << body;
  std::system(("chmod +x " + path).c_str());
  return path;
}

MessagePtr request(const std::string& id, const std::string& target = "/a") {
  return make_message(Kind::request, "GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n", id, 1700000000000000000);
}
}  // namespace

TEST_CASE("hex line encoding is GoReplay's: hex of header line plus payload") {
  Message m(Kind::response, "abc", 17, "HTTP/1.1 200 OK\r\n\r\n");
  m.latency_ns = 5;
  std::string line;
  plugins::append_hex_line(line, m);
  CHECK(line.starts_with("322061626320313720350a"));  // "2 abc 17 5\n"
  CHECK(line.back() == '\n');
  std::string error;
  auto back = plugins::decode_hex_line(std::string_view(line).substr(0, line.size() - 1), error);
  REQUIRE(back);
  CHECK(back->kind == Kind::response);
  CHECK(back->id == "abc");
  CHECK(back->timestamp_ns == 17);
  CHECK(back->latency_ns == 5);
  CHECK(back->payload == m.payload);
  CHECK_FALSE(plugins::decode_hex_line("zz", error));
  CHECK_FALSE(plugins::decode_hex_line("abc", error));
  CHECK_FALSE(plugins::decode_hex_line("6869", error));  // "hi": no header
}

TEST_CASE("a plain bash echo loop passes every message through unchanged") {
  auto path = script("echo.sh", "while read line; do echo \"$line\"; done\n");
  testing::StageHarness h(process_plugin(), Value::table({{"command", path}}));
  h.start();
  for (int i = 0; i < 50; ++i) h.process(request("id" + std::to_string(i)));
  auto reply = make_message(Kind::replay, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "id0", 5);
  h.process(reply);
  h.flush();
  auto out = h.emitted();
  REQUIRE(out.size() == 51);
  CHECK(out[0]->id == "id0");
  CHECK(out[0]->kind == Kind::request);
  CHECK(out[0]->payload == request("x")->payload);
  CHECK(out[0]->timestamp_ns == 1700000000000000000);
  CHECK(out[50]->kind == Kind::replay);
  CHECK(h.drops().empty());
  h.stop();
}

TEST_CASE("what the program does not write back is dropped and counted; stderr goes to the log") {
  // Drops every message whose decoded payload mentions /drop; writes a note to stderr.
  auto path = script("filter.sh",
                     "while read line; do\n"
                     "  if echo \"$line\" | xxd -r -p | grep -q '/drop'; then echo 'dropping one' >&2; continue; fi\n"
                     "  echo \"$line\"\n"
                     "done\n");
  testing::StageHarness h(process_plugin(), Value::table({{"command", path}, {"return_timeout", "300ms"}}));
  h.process(request("a", "/keep"));
  h.process(request("b", "/drop"));
  h.process(request("c", "/keep"));
  h.flush();
  CHECK(h.emitted().size() == 2);
  CHECK(h.dropped("not_returned") == 1);
  CHECK(h.stage().pending() == 0);
  h.stop();
}

TEST_CASE("a program that rewrites messages: kind and id come from the header it wrote back") {
  // Turns each message into a response with id "new" by rewriting the first hex byte and the id.
  auto path = script("rewrite.sh",
                     "while read line; do\n"
                     "  decoded=$(echo \"$line\" | xxd -r -p | sed '1s/^1 [^ ]* /2 new /' | sed 's/Host: a/Host: b/')\n"
                     "  printf '%s' \"$decoded\" | xxd -p | tr -d '\\n'; echo\n"
                     "done\n");
  // Three processes a line: on a loaded machine the first answer can take longer than the
  // default quiet time flush() waits for.
  testing::StageHarness h(process_plugin(), Value::table({{"command", path}, {"return_timeout", "10s"}}));
  h.process(request("old"));
  h.flush();
  auto out = h.emitted();
  REQUIRE(out.size() == 1);
  CHECK(out[0]->kind == Kind::response);
  CHECK(out[0]->id == "new");
  CHECK(out[0]->payload.find("Host: b") != std::string::npos);
  h.stop();
}

TEST_CASE("ten megabyte bodies survive the round trip") {
  auto path = script("cat.sh", "exec cat\n");
  testing::StageHarness h(process_plugin(), Value::table({{"command", path}}));
  std::string body(10 << 20, 'z');
  body[12345] = '\n';
  body[777] = '\0';
  auto big = make_message(Kind::request,
                          "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body,
                          "big");
  h.process(big);
  h.process(request("small"));
  h.flush();
  auto out = h.emitted();
  REQUIRE(out.size() == 2);
  CHECK(out[0]->payload == big->payload);
  CHECK(out[1]->id == "small");
  h.stop();
}

TEST_CASE("a program that exits is restarted; its in-flight messages are counted as lost") {
  // Echoes one message, then swallows the next and exits.
  auto path = script("flaky.sh", "read line; echo \"$line\"; read line; exit 3\n");
  testing::StageHarness h(process_plugin(), Value::table({{"command", path}, {"restart_backoff", "20ms"}}));
  h.process(request("1"));
  h.process(request("2"));  // swallowed: lost when the program exits
  REQUIRE(h.wait_until([&] { return h.dropped("lost_in_restart") == 1; }, 5s));
  h.process(request("3"));  // reaches the restarted program
  REQUIRE(h.wait_until([&] { return h.emitted().size() == 2; }, 5s));
  CHECK(h.emitted()[1]->id == "3");
  h.stop();
}

TEST_CASE("restart = never: after the program exits, messages are dropped as middleware_exited") {
  auto path = script("once.sh", "read line; echo \"$line\"; exit 0\n");
  testing::StageHarness h(process_plugin(), Value::table({{"command", path}, {"restart", "never"}}));
  h.process(request("1"));
  REQUIRE(h.wait_until([&] { return h.emitted().size() == 1; }, 5s));
  std::this_thread::sleep_for(200ms);  // let the exit be noticed
  h.process(request("2"));
  CHECK(h.dropped("middleware_exited") == 1);
  h.stop();
}

TEST_CASE("lines that are not messages are counted, not fatal") {
  auto path = script("noisy.sh", "echo 'debug: starting'; while read line; do echo \"$line\"; done\n");
  testing::StageHarness h(process_plugin(), Value::table({{"command", path}}));
  h.process(request("1"));
  h.flush();
  CHECK(h.emitted().size() == 1);
  CHECK(h.failed("bad_line") == 1);
  h.stop();
}

TEST_CASE("a program that cannot start is an error at start") {
  testing::StageHarness h(process_plugin(), Value::table({{"command", "/nonexistent/mw --flag"}}));
  CHECK_THROWS_WITH(h.start(), doctest::Contains("cannot start middleware `/nonexistent/mw --flag`"));
}

TEST_CASE("what the program writes back takes over the lease of what was sent with that id") {
  auto path = script("filter_lease.sh",
                     "while read line; do\n"
                     "  if echo \"$line\" | xxd -r -p | grep -q '/drop'; then continue; fi\n"
                     "  echo \"$line\"\n"
                     "done\n");
  auto leased = [](MessagePtr m, std::shared_ptr<const void> lease) {
    Message copy(*m);
    copy.lease = std::move(lease);
    return share(std::move(copy));
  };
  std::weak_ptr<const void> kept_source, dropped_source;
  {
    testing::StageHarness h(process_plugin(), Value::table({{"command", path}, {"return_timeout", "300ms"}}));
    auto kept = std::make_shared<int>(1);
    auto dropped = std::make_shared<int>(2);
    kept_source = kept;
    dropped_source = dropped;
    h.process(leased(request("k", "/keep"), kept));
    h.process(leased(request("d", "/drop"), dropped));
    kept.reset();
    dropped.reset();
    REQUIRE(h.wait_until([&] { return h.emitted().size() == 1; }, 5s));
    CHECK(h.emitted()[0]->lease == kept_source.lock());  // the replacement holds the source
    CHECK(h.gauge("table.leases").value() == 1);          // the dropped message's, until return_timeout
    // Traffic keeps flowing (never quiet for return_timeout), yet the lease of the message the
    // program dropped is released once it answered messages sent return_timeout later.
    for (int i = 0; i < 10 && !dropped_source.expired(); ++i) {
      h.process(leased(request("n" + std::to_string(i), "/keep"), std::make_shared<int>(3)));
      std::this_thread::sleep_for(100ms);
    }
    CHECK(dropped_source.expired());
    CHECK_FALSE(kept_source.expired());
    h.flush();
    CHECK(h.gauge("table.leases").value() == 0);
    h.stop();
  }
  CHECK(kept_source.expired());
}

TEST_CASE("a slow program with a backlog keeps the leases of what it has not answered yet") {
  auto path = script("slow_lease.sh", "while read line; do sleep 0.2; echo \"$line\"; done\n");
  std::vector<std::weak_ptr<const void>> sources;
  {
    testing::StageHarness h(process_plugin(), Value::table({{"command", path}, {"return_timeout", "300ms"}}));
    for (int i = 0; i < 6; ++i) {
      auto lease = std::make_shared<int>(i);
      sources.push_back(lease);
      Message m(*request("s" + std::to_string(i)));
      m.lease = lease;
      h.process(share(std::move(m)));
    }
    REQUIRE(h.wait_until([&] { return h.emitted().size() == 1; }, 5s));
    std::this_thread::sleep_for(300ms);  // the rest is older than return_timeout now, not answered yet
    CHECK(h.emitted().size() < 5);
    CHECK_FALSE(sources[4].expired());
    CHECK_FALSE(sources[5].expired());
    h.flush();
    REQUIRE(h.emitted().size() == 6);
    for (int i = 0; i < 6; ++i) CHECK(h.emitted()[i]->lease == sources[i].lock());
    h.stop();
  }
  for (auto& s : sources) CHECK(s.expired());
}

// ---- Per-id order (order = "auto" / "per_id"): request -> original response -> replay ----

namespace {
MessagePtr response(const std::string& id, const std::string& body = "ok") {
  return make_message(Kind::response,
                      "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body, id);
}
MessagePtr replay(const std::string& id, const std::string& body = "ok") {
  return make_message(Kind::replay,
                      "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body, id);
}
std::string order_of(const std::vector<MessagePtr>& out) {
  std::string s;
  for (const auto& m : out) s += (s.empty() ? "" : " ") + std::to_string(static_cast<int>(m->kind)) + m->id;
  return s;
}
std::string source_dir() {
  const char* dir = std::getenv("DOPPEL_SOURCE_DIR");
  return dir ? dir : ".";
}
std::size_t count_lines(const std::string& path, const std::string& containing) {
  std::ifstream in(path);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n += line.find(containing) != std::string::npos;
  return n;
}
}  // namespace

TEST_CASE("per-id order: a replay that overtakes its original response reaches the program after it") {
  auto path = script("cat_order.sh", "exec cat\n");
  testing::StageHarness h(process_plugin(), Value::table({{"command", path}}));
  h.process(request("a"));
  h.process(replay("a"));    // the candidate answered in 1 ms...
  h.process(request("b"));   // (other ids are not held up)
  h.process(response("a"));  // ...the original server in 40 ms
  h.process(response("b"));
  h.flush();
  CHECK(order_of(h.emitted()) == "1a 1b 2a 3a 2b");
  CHECK(h.counter("held").value() == 1);
  CHECK(h.counter("held_expired").value() == 0);
  CHECK(h.gauge("holding").value() == 0);
  h.stop();
}

TEST_CASE("per-id order remembers at most 16 x hold_max ids, the oldest forgotten first and counted") {
  auto path = script("cat_ids.sh", "exec cat\n");
  testing::StageHarness h(process_plugin(), Value::table({{"command", path}, {"hold_max", 2}}));
  for (int i = 0; i < 100; ++i) h.process(request("i" + std::to_string(i)));
  CHECK(h.gauge("table.ids").value() == 32);
  CHECK(h.counter("ids_forgotten").value() == 100 - 32);
  h.flush();
  CHECK(h.emitted().size() == 100);
  h.stop();
}

TEST_CASE("order = auto holds nothing when no original response can reach the stage") {
  auto path = script("cat_arrival.sh", "exec cat\n");
  testing::StageHarness h(process_plugin(), Value::table({{"command", path}}));
  h.set_input_kinds(KindSet{Kind::request, Kind::replay});  // e.g. raw input without track_response
  h.process(replay("a"));
  h.process(request("a"));
  h.flush();
  CHECK(order_of(h.emitted()) == "3a 1a");
  CHECK(h.counter("held").value() == 0);
  h.stop();
}

TEST_CASE("order = arrival holds nothing even with original responses") {
  auto path = script("cat_arrival2.sh", "exec cat\n");
  testing::StageHarness h(process_plugin(), Value::table({{"command", path}, {"order", "arrival"}}));
  h.process(request("a"));
  h.process(replay("a"));
  h.process(response("a"));
  h.flush();
  CHECK(order_of(h.emitted()) == "1a 3a 2a");
  h.stop();
}

TEST_CASE("a held message whose original response never comes reaches the program after hold_timeout") {
  auto path = script("cat_expiry.sh", "exec cat\n");
  testing::StageHarness h(process_plugin(), Value::table({{"command", path}, {"hold_timeout", "200ms"}}));
  auto start = std::chrono::steady_clock::now();
  h.process(request("a"));
  h.process(replay("a"));
  REQUIRE(h.wait_until([&] { return h.emitted().size() == 2; }, 5s));
  auto waited = std::chrono::steady_clock::now() - start;
  CHECK(waited >= 190ms);
  CHECK(waited < 2s);
  CHECK(h.counter("held_expired").value() == 1);
  h.process(response("a"));  // late: goes straight on
  h.flush();
  CHECK(order_of(h.emitted()) == "1a 3a 2a");
  h.stop();
}

TEST_CASE("hold_max: when full, the oldest held message goes to the program early") {
  auto path = script("cat_overflow.sh", "exec cat\n");
  testing::StageHarness h(process_plugin(), Value::table({{"command", path}, {"hold_max", std::int64_t{2}}}));
  for (const char* id : {"a", "b", "c"}) {
    h.process(request(id));
    h.process(replay(id));
  }
  REQUIRE(h.wait_until([&] { return h.emitted().size() == 4; }, 5s));
  CHECK(order_of(h.emitted()) == "1a 1b 1c 3a");
  CHECK(h.counter("held_overflow").value() == 1);
  CHECK(h.stage().pending() >= 2);  // b and c are still held: draining waits for them
  h.flush();
  CHECK(h.emitted().size() == 6);
  CHECK(h.counter("held_flushed").value() == 2);
  h.stop();
}

TEST_CASE("a program that never writes back responses or replays blocks nothing; they are counted") {
  // Writes back requests only (hex of "1 " starts a request's line), like a Node middleware
  // whose response and replay callbacks return nothing.
  auto path = script("requests_only.sh", "while read line; do case \"$line\" in 3120*) echo \"$line\";; esac; done\n");
  testing::StageHarness h(process_plugin(), Value::table({{"command", path}, {"return_timeout", "300ms"}}));
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) {
    std::string id = "n" + std::to_string(i);
    h.process(request(id));
    h.process(replay(id));
    h.process(response(id));
  }
  h.flush();
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK(h.emitted().size() == 50);
  CHECK(h.counter("held").value() == 50);
  CHECK(h.dropped("not_returned") == 100);
  CHECK(h.stage().pending() == 0);
  h.stop();
}

TEST_CASE("the seed's Python callback middleware (gor package API) sees every replay that overtakes its response") {
  // 170 exchanges, each replay arriving before its original response, as on live capture with a
  // 40 ms original server and a 1 ms candidate. In arrival order the middleware registers the
  // replay callback too late every time; in per-id order it compares all 170.
  std::string dir = source_dir() + "/tests/plugins/middleware/process";
  auto run = [&](const std::string& order) {
    std::string out = std::string(std::getenv("DOPPEL_BUILD_DIR") ? std::getenv("DOPPEL_BUILD_DIR") : "/tmp") +
                      "/test-process-middleware/seed-" + order + ".txt";
    std::remove(out.c_str());
    testing::StageHarness h(
        process_plugin(),
        Value::table({{"command", Value::array({"env", "PYTHONDONTWRITEBYTECODE=1", "PYTHONPATH=" + dir, "python3",
                                                dir + "/seed_style_middleware.py", out})},
                      {"order", order},
                      {"return_timeout", "500ms"}}));
    for (int i = 0; i < 170; ++i) {
      std::string id = "5eed" + std::to_string(1000 + i);
      std::string body = "{\"robot_id\":\"664\",\"n\":" + std::to_string(i) + "}";
      h.process(request(id, "/v2/robot/query"));
      h.process(replay(id, body));
      h.process(response(id, body));
    }
    h.flush();
    h.stop();
    return std::pair{count_lines(out, " same"), count_lines(out, " ")};
  };
  auto [same, seen] = run("auto");
  CHECK(seen == 170);
  CHECK(same == 170);
  auto [same_arrival, seen_arrival] = run("arrival");
  MESSAGE("arrival order: the middleware compared " << seen_arrival << " of 170 replays");
  CHECK(seen_arrival == 0);
}
