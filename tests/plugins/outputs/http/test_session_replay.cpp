// Session-aware replay against a real loopback server (session_server.py) that logs, for every
// request, the TCP connection it arrived on and the order it arrived in.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "doppel/testing.hpp"

using namespace doppel;
using namespace std::chrono_literals;

namespace {

const PluginDefinition& http_plugin() { return testing::linked_plugin("http"); }

struct Arrival {
  int conn = 0;
  int seq = 0;
  std::int64_t arrived = 0, answered = 0;
  bool pipelined = false;
  std::string target;
};

// Runs session_server.py on a free loopback port until destroyed.
class SessionServer {
 public:
  explicit SessionServer(bool close_each = false) {
    log_ = (std::filesystem::temp_directory_path() / ("doppel-session-" + std::to_string(::getpid()) + "-" +
                                                      std::to_string(++instances_) + ".log"))
               .string();
    std::filesystem::remove(log_);
    int out[2];
    REQUIRE(::pipe(out) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
      if (close_each) ::execlp("python3", "python3", DOPPEL_SESSION_SERVER, log_.c_str(), "--close-each", nullptr);
      else ::execlp("python3", "python3", DOPPEL_SESSION_SERVER, log_.c_str(), nullptr);
      ::_exit(127);
    }
    ::close(out[1]);
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);
    REQUIRE_MESSAGE(!line.empty(), "session_server.py did not start");
    port_ = std::stoi(line);
  }
  ~SessionServer() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    std::filesystem::remove(log_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::vector<Arrival> arrivals() const {
    std::vector<Arrival> out;
    std::ifstream in(log_);
    Arrival a;
    int pipelined = 0;
    while (in >> a.conn >> a.seq >> a.arrived >> a.answered >> pipelined >> a.target) {
      a.pipelined = pipelined != 0;
      out.push_back(a);
    }
    std::sort(out.begin(), out.end(), [](const Arrival& x, const Arrival& y) { return x.seq < y.seq; });
    return out;
  }

 private:
  static inline int instances_ = 0;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_;
};

MessagePtr request(const std::string& target, std::uint64_t connection_id = 0, const std::string& headers = "") {
  Message m(Kind::request, new_message_id(), now_ns(), "GET " + target + " HTTP/1.1\r\nHost: prod\r\n" + headers + "\r\n");
  m.meta.connection_id = connection_id;
  m.meta.source = Endpoint{"10.1.1.1", static_cast<std::uint16_t>(40000 + connection_id)};
  return share(std::move(m));
}

// The arrivals whose target starts with `prefix`, in arrival order.
std::vector<Arrival> of(const std::vector<Arrival>& all, const std::string& prefix) {
  std::vector<Arrival> out;
  for (auto& a : all)
    if (a.target.starts_with(prefix)) out.push_back(a);
  return out;
}

// A session's requests arrived in captured order (`/sN/rI`), one at a time: each only after the
// previous one was answered, none pipelined.
void check_in_order_one_at_a_time(const std::vector<Arrival>& session, const std::string& prefix, int count) {
  REQUIRE(session.size() == static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    CHECK_MESSAGE(session[i].target.starts_with(prefix + "/r" + std::to_string(i)), session[i].target);
    CHECK_FALSE(session[i].pipelined);
    if (i > 0) CHECK(session[i].arrived >= session[i - 1].answered);
  }
}

bool no_failures(testing::StageHarness& h) {
  for (const char* reason : {"refused", "timeout", "reset", "tls", "tls_verify", "dns", "connect", "bad_response"})
    if (h.failed(reason) != 0) return false;
  return true;
}

std::set<int> connections_of(const std::vector<Arrival>& session) {
  std::set<int> out;
  for (auto& a : session) out.insert(a.conn);
  return out;
}

}  // namespace

TEST_CASE("session = connection: each captured connection in order on one target connection, one at a time") {
  SessionServer server;
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()},
                                                       {"session", "connection"},
                                                       {"workers", 8},
                                                       {"track_response", true}}));
  // Three captured connections, their requests interleaved as a capture would emit them; the
  // server answers each after 20ms, so a free pool would send a session's requests together.
  for (int i = 0; i < 6; ++i)
    for (int c = 1; c <= 3; ++c)
      h.process(request("/s" + std::to_string(c) + "/r" + std::to_string(i) + "?delay=20", c));
  h.flush();
  CHECK(h.stage().pending() == 0);
  CHECK(h.emitted().size() == 18);
  auto all = server.arrivals();
  REQUIRE(all.size() == 18);
  std::set<int> used;
  for (int c = 1; c <= 3; ++c) {
    std::string prefix = "/s" + std::to_string(c);
    auto session = of(all, prefix);
    check_in_order_one_at_a_time(session, prefix, 6);
    auto connections = connections_of(session);
    CHECK(connections.size() == 1);  // one target connection per captured connection
    used.insert(connections.begin(), connections.end());
  }
  CHECK(used.size() == 3);  // and no two sessions on one connection
  CHECK(h.counter("sessions.started").value() == 3);
  CHECK(h.counter("sessions.reconnects").value() == 0);
  CHECK(h.counter("sessions.no_key").value() == 0);
  CHECK(no_failures(h));
}

TEST_CASE("sessions keyed by a header, a cookie or a query parameter; requests without a key replay freely") {
  struct Case {
    std::string spec;
    std::function<MessagePtr(int session, const std::string& target)> make;
  };
  std::vector<Case> cases = {
      {"header:X-Session", [](int s, const std::string& t) { return request(t, 0, "X-Session: u" + std::to_string(s) + "\r\n"); }},
      {"cookie:sid",
       [](int s, const std::string& t) { return request(t, 0, "Cookie: theme=dark; sid=u" + std::to_string(s) + "\r\n"); }},
      {"param:user", [](int s, const std::string& t) { return request(t + "&user=u" + std::to_string(s), 0); }},
  };
  for (auto& c : cases) {
    CAPTURE(c.spec);
    SessionServer server;
    testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()}, {"session", c.spec}, {"workers", 4}}));
    for (int i = 0; i < 4; ++i) {
      // The captured connection does not matter here: every request comes on connection 7.
      for (int s = 1; s <= 2; ++s) h.process(c.make(s, "/s" + std::to_string(s) + "/r" + std::to_string(i) + "?delay=15"));
      h.process(request("/free/" + std::to_string(i) + "?delay=15", 7));  // no key
    }
    h.flush();
    auto all = server.arrivals();
    REQUIRE(all.size() == 12);
    for (int s = 1; s <= 2; ++s) {
      std::string prefix = "/s" + std::to_string(s);
      auto session = of(all, prefix);
      check_in_order_one_at_a_time(session, prefix, 4);
      CHECK(connections_of(session).size() == 1);
    }
    CHECK(of(all, "/free/").size() == 4);
    CHECK(h.counter("sessions.started").value() == 2);
    CHECK(h.counter("sessions.no_key").value() == 4);
    CHECK(no_failures(h));
  }
}

TEST_CASE("a target that closes after every response: each session goes on, reconnecting per request") {
  SessionServer server(/*close_each=*/true);
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()},
                                                       {"session", "connection"},
                                                       {"workers", 4},
                                                       {"track_response", true}}));
  for (int i = 0; i < 5; ++i)
    for (int c = 1; c <= 2; ++c) h.process(request("/s" + std::to_string(c) + "/r" + std::to_string(i), c));
  h.flush();
  auto all = server.arrivals();
  REQUIRE(all.size() == 10);
  for (int c = 1; c <= 2; ++c) {
    std::string prefix = "/s" + std::to_string(c);
    auto session = of(all, prefix);
    check_in_order_one_at_a_time(session, prefix, 5);
    CHECK(connections_of(session).size() == 5);  // a new connection for each request
  }
  CHECK(h.counter("sessions.reconnects").value() == 8);  // 4 per session
  CHECK(h.counter("responses").value() == 10);
  CHECK(no_failures(h));
}

TEST_CASE("a session whose first request dies goes on, on a new connection") {
  SessionServer server;
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()},
                                                       {"session", "connection"},
                                                       {"workers", 4},
                                                       {"track_response", true}}));
  h.process(request("/dead/s1/r0", 1));  // the server closes without answering
  h.process(request("/s2/r0", 2));
  for (int i = 1; i < 4; ++i) {
    h.process(request("/s1/r" + std::to_string(i), 1));
    h.process(request("/s2/r" + std::to_string(i), 2));
  }
  h.flush();
  auto all = server.arrivals();
  REQUIRE(all.size() == 8);
  auto dead = of(all, "/dead/");
  REQUIRE(dead.size() == 1);
  auto s1 = of(all, "/s1/");
  REQUIRE(s1.size() == 3);
  for (std::size_t i = 0; i < s1.size(); ++i) CHECK(s1[i].target == "/s1/r" + std::to_string(i + 1));
  CHECK(s1.front().arrived >= dead[0].arrived);
  CHECK(connections_of(s1).size() == 1);
  CHECK(connections_of(s1).count(dead[0].conn) == 0);  // not the connection that died
  check_in_order_one_at_a_time(of(all, "/s2"), "/s2", 4);
  CHECK(h.failed("reset") == 1);
  CHECK(h.counter("sessions.reconnects").value() == 1);
  CHECK(h.emitted().size() == 8);  // the dead one as an error replay
}

TEST_CASE("sessions run in parallel; with more sessions than workers the others wait their turn") {
  constexpr int kSessions = 8, kRequests = 4, kDelayMs = 100;
  {
    SessionServer server;
    testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()},
                                                         {"session", "connection"},
                                                         {"workers", kSessions}}));
    auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < kRequests; ++i)
      for (int s = 1; s <= kSessions; ++s)
        h.process(request("/s" + std::to_string(s) + "/r" + std::to_string(i) + "?delay=" + std::to_string(kDelayMs),
                          static_cast<std::uint64_t>(s)));
    h.flush();
    auto wall = std::chrono::steady_clock::now() - started;
    MESSAGE("8 sessions x 4 requests x 100ms: ", std::chrono::duration_cast<std::chrono::milliseconds>(wall).count(),
            "ms (serial: 3200ms)");
    // Serial would take kSessions * kRequests * 100ms = 3.2s; in parallel about 0.4s.
    CHECK(wall < std::chrono::milliseconds(kSessions * kRequests * kDelayMs / 3));
    CHECK(wall >= std::chrono::milliseconds(kRequests * kDelayMs));  // but each session one at a time
    auto all = server.arrivals();
    REQUIRE(all.size() == kSessions * kRequests);
    for (int s = 1; s <= kSessions; ++s)
      check_in_order_one_at_a_time(of(all, "/s" + std::to_string(s) + "/"), "/s" + std::to_string(s), kRequests);
  }
  {
    // Two workers, four sessions with all their requests queued at once: at most two sessions
    // are active, and a session keeps its connection until it has nothing left to send.
    SessionServer server;
    testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()},
                                                         {"session", "connection"},
                                                         {"workers", 2}}));
    for (int i = 0; i < 3; ++i)
      for (int s = 1; s <= 4; ++s)
        h.process(request("/s" + std::to_string(s) + "/r" + std::to_string(i) + "?delay=20", static_cast<std::uint64_t>(s)));
    h.flush();
    auto all = server.arrivals();
    REQUIRE(all.size() == 12);
    for (int s = 1; s <= 4; ++s) {
      auto session = of(all, "/s" + std::to_string(s) + "/");
      check_in_order_one_at_a_time(session, "/s" + std::to_string(s), 3);
      CHECK(connections_of(session).size() == 1);
    }
    // Never more than two requests being answered at once.
    for (auto& a : all) {
      int overlapping = 0;
      for (auto& b : all) overlapping += b.arrived <= a.arrived && a.arrived < b.answered ? 1 : 0;
      CHECK(overlapping <= 2);
    }
    // Sessions 3 and 4 waited in line: they started after 1 and 2 were done.
    CHECK(of(all, "/s3/").front().arrived >= of(all, "/s1/").back().answered);
  }
}

TEST_CASE("a slow session does not hold back the others") {
  SessionServer server;
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()},
                                                       {"session", "connection"},
                                                       {"workers", 2},
                                                       {"track_response", true}}));
  h.process(request("/slow/r0?delay=800", 1));
  for (int i = 0; i < 10; ++i) h.process(request("/fast/r" + std::to_string(i), static_cast<std::uint64_t>(2 + i % 3)));
  h.flush();
  auto all = server.arrivals();
  REQUIRE(all.size() == 11);
  auto slow = of(all, "/slow/");
  REQUIRE(slow.size() == 1);
  for (auto& a : of(all, "/fast/")) CHECK(a.answered < slow[0].answered);
}

TEST_CASE("idle sessions expire, the oldest idle one makes room at max_sessions") {
  SessionServer server;
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()},
                                                       {"session", "header:X-S"},
                                                       {"session_idle_timeout", "100ms"},
                                                       {"max_sessions", 2}}));
  auto in = [&](const std::string& s, const std::string& path) {
    h.process(request(path, 0, "X-S: " + s + "\r\n"));
    h.flush();
  };
  in("a", "/a/r0");
  in("b", "/b/r0");
  in("c", "/c/r0");  // the limit: `a`, idle the longest, makes room
  CHECK(h.counter("sessions.evicted").value() == 1);
  CHECK(h.gauge("table.sessions").value() == 2);
  std::this_thread::sleep_for(300ms);
  in("d", "/d/r0");  // b and c idled past the timeout
  CHECK(h.counter("sessions.expired").value() == 2);
  CHECK(h.gauge("table.sessions").value() == 1);
  in("d", "/d/r1");
  auto all = server.arrivals();
  REQUIRE(all.size() == 5);
  CHECK(connections_of(of(all, "/d/")).size() == 1);
  CHECK(connections_of(of(all, "/d/")).count(all[0].conn) == 0);  // expired sessions' connections were closed
  CHECK(h.counter("sessions.started").value() == 4);
  CHECK(h.stage().pending() == 0);
}

TEST_CASE("session = connection without connection ids (.gor): counted and replayed freely") {
  SessionServer server;
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()}, {"session", "connection"}}));
  for (int i = 0; i < 5; ++i) h.process(request("/gor/" + std::to_string(i), 0));
  h.flush();
  CHECK(server.arrivals().size() == 5);
  CHECK(h.counter("sessions.no_key").value() == 5);
  CHECK(h.counter("sessions.started").value() == 0);
}

TEST_CASE("session options are validated") {
  CHECK_THROWS_WITH_AS(
      testing::StageHarness(http_plugin(), Value::table({{"url", "http://x"}, {"session", "ip"}})),
      doctest::Contains("expected \"connection\""), ConfigError);
  CHECK_THROWS_WITH_AS(
      testing::StageHarness(http_plugin(), Value::table({{"url", "http://x"}, {"session", "header:"}})),
      doctest::Contains("needs a name"), ConfigError);
  CHECK_THROWS_WITH_AS(
      testing::StageHarness(http_plugin(), Value::table({{"url", "http://x"}, {"session", "connection"}, {"max_sessions", 0}})),
      doctest::Contains("max_sessions"), ConfigError);
}
