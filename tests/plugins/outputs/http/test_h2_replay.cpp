// HTTP/2 replay (`protocol`, h2 messages) against a scripted HTTP/2 server made with
// libnghttp2's server session, and against the scripted HTTP/1.1 server for the fallback.
#include <doctest/doctest.h>

#include <map>
#include <set>

#include "doppel/testing.hpp"
#include "scripted_h2_server.hpp"
#include "scripted_server.hpp"

using namespace doppel;
using doppel::testing::H2Action;
using doppel::testing::H2Request;
using doppel::testing::ScriptedH2Server;
using namespace std::chrono_literals;

namespace {

const PluginDefinition& http_plugin() { return testing::linked_plugin("http"); }

// A request captured over HTTP/2: its HTTP/1.1 form, meta proto = h2.
MessagePtr h2_request(std::string payload, std::string id) {
  Message m(Kind::request, std::move(id), 0, std::move(payload));
  m.meta.proto = "h2";
  m.meta.stream_id = 1;
  return share(std::move(m));
}

MessagePtr h2_get(const std::string& path, const std::string& id, const std::string& extra = "") {
  return h2_request("GET " + path + " HTTP/1.1\r\nhost: prod.example.com\r\nAccept: */*\r\n" + extra + "\r\n", id);
}

std::map<std::string, MessagePtr> by_id(const std::vector<MessagePtr>& messages) {
  std::map<std::string, MessagePtr> out;
  for (auto& m : messages) out[m->id] = m;
  return out;
}

H2Action grpc_ok(std::string body) {
  H2Action a;
  a.headers = {{":status", "200"}, {"content-type", "application/grpc"}};
  a.body = std::move(body);
  a.trailers = {{"grpc-status", "0"}, {"grpc-message", "fine"}};
  return a;
}

// A loopback port nothing listens on.
int dead_port() {
  ScriptedH2Server probe([](const H2Request&) { return H2Action{}; });
  return probe.port();
}

}  // namespace

TEST_CASE("h2 requests are multiplexed on one connection; trailers come back in the HTTP/1.1 form") {
  ScriptedH2Server server([](const H2Request&) { return grpc_ok("abc"); });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url() + "/base"}, {"track_response", true}}));
  const int n = 40;
  for (int i = 0; i < n; ++i) h.process(h2_get("/x?i=" + std::to_string(i), "id" + std::to_string(i)));
  h.flush();
  auto replies = by_id(h.emitted());
  REQUIRE(replies.size() == n);
  std::set<std::uint32_t> stream_ids;
  for (auto& [id, m] : replies) {
    CHECK(m->meta.error.empty());
    CHECK(m->payload ==
          "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
          "grpc-status: 0\r\ngrpc-message: fine\r\n\r\n");
    CHECK(m->meta.proto == "h2");
    CHECK(m->meta.stream_id % 2 == 1);
    CHECK(m->latency_ns > 0);
    stream_ids.insert(m->meta.stream_id);
  }
  CHECK(stream_ids.size() == n);  // each on a stream of its own
  CHECK(server.connections() == 1);
  auto requests = server.requests();
  REQUIRE(requests.size() == n);
  for (auto& r : requests) {
    CHECK(r.headers.at(":authority") == "127.0.0.1:" + std::to_string(server.port()));  // Host rewrite
    CHECK(r.headers.at(":scheme") == "http");
    CHECK(r.headers.at(":path").starts_with("/base/x?i="));  // base path joined
    CHECK(r.headers.at("accept") == "*/*");                  // lower-cased for HTTP/2
    CHECK(r.headers.count("host") == 0);
  }
}

TEST_CASE("request bodies and trailers reach the target as DATA and a trailing HEADERS") {
  ScriptedH2Server server([](const H2Request& r) { return grpc_ok(r.body); });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()}, {"track_response", true}}));
  std::string body(70000, 'b');  // more than one DATA frame
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7);
  std::string chunked = "POST /doppel.test.Greeter/SayHello HTTP/1.1\r\nhost: prod\r\ncontent-type: application/grpc\r\n"
                        "te: trailers\r\ntransfer-encoding: chunked\r\n\r\n";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", body.size());
  chunked += std::string(size) + "\r\n" + body + "\r\n0\r\nx-client-trailer: yes\r\n\r\n";
  h.process(h2_request(chunked, "post"));
  h.process(h2_request("PUT /plain HTTP/1.1\r\nhost: prod\r\ncontent-length: 5\r\n\r\nhello", "put"));
  h.flush();
  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  std::map<std::string, H2Request> by_path;
  for (auto& r : requests) by_path[r.headers.at(":path")] = r;
  const H2Request& grpc = by_path.at("/doppel.test.Greeter/SayHello");
  CHECK(grpc.body == body);
  CHECK(grpc.headers.at("te") == "trailers");
  CHECK(grpc.headers.count("transfer-encoding") == 0);  // HTTP/2 forbids it
  REQUIRE(grpc.trailers.size() == 1);
  CHECK(grpc.trailers[0] == std::pair<std::string, std::string>("x-client-trailer", "yes"));
  CHECK(by_path.at("/plain").body == "hello");
  CHECK(by_path.at("/plain").headers.at(":method") == "PUT");
  auto replies = by_id(h.emitted());
  REQUIRE(replies.size() == 2);
  CHECK(replies.at("post")->payload.find(body) != std::string::npos);  // echoed back, byte for byte
}

TEST_CASE("RST_STREAM ends its stream as `reset: <code>`; the connection serves the others") {
  ScriptedH2Server server([](const H2Request& r) {
    if (r.headers.at(":path") == "/rst") {
      H2Action a;
      a.kind = H2Action::Kind::reset;
      a.reset_code = NGHTTP2_INTERNAL_ERROR;
      return a;
    }
    return grpc_ok("x");
  });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()}, {"track_response", true}}));
  h.process(h2_get("/a", "a"));
  h.process(h2_get("/rst", "rst"));
  h.process(h2_get("/b", "b"));
  h.flush();
  auto replies = by_id(h.emitted());
  REQUIRE(replies.size() == 3);
  CHECK(replies.at("rst")->meta.error == "reset: INTERNAL_ERROR");
  CHECK(replies.at("rst")->meta.proto == "h2");
  CHECK(replies.at("rst")->payload.empty());
  CHECK(replies.at("a")->meta.error.empty());
  CHECK(replies.at("b")->meta.error.empty());
  CHECK(h.failed("stream_reset") == 1);
  CHECK(server.connections() == 1);
}

TEST_CASE("a stream unanswered within `timeout` is cancelled and counted; the others are not held up") {
  ScriptedH2Server server([](const H2Request& r) {
    if (r.headers.at(":path") == "/slow") return H2Action::of(H2Action::Kind::silent);
    return grpc_ok("x");
  });
  testing::StageHarness h(http_plugin(),
                          Value::table({{"url", server.url()}, {"track_response", true}, {"timeout", "300ms"}}));
  h.process(h2_get("/slow", "slow"));
  for (int i = 0; i < 5; ++i) h.process(h2_get("/fast", "fast" + std::to_string(i)));
  h.flush();
  auto replies = by_id(h.emitted());
  REQUIRE(replies.size() == 6);
  CHECK(replies.at("slow")->meta.error == "timeout");
  CHECK(replies.at("slow")->latency_ns >= 300'000'000);
  for (int i = 0; i < 5; ++i) CHECK(replies.at("fast" + std::to_string(i))->meta.error.empty());
  CHECK(h.failed("timeout") == 1);
  CHECK(server.connections() == 1);
}

TEST_CASE("a malformed response is an error with the reason, counted") {
  ScriptedH2Server server([](const H2Request& r) {
    H2Action a;
    if (r.headers.at(":path") == "/short") {
      a.headers = {{":status", "200"}, {"content-length", "10"}};
      a.body = "abc";
    } else {
      a.headers = {{"content-type", "text/plain"}};  // no :status
    }
    return a;
  });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()}, {"track_response", true}}));
  h.process(h2_get("/short", "short"));
  h.process(h2_get("/nostatus", "nostatus"));
  h.flush();
  auto replies = by_id(h.emitted());
  REQUIRE(replies.size() == 2);
  CHECK(replies.at("short")->meta.error == "bad_response: content-length differs from the DATA received");
  CHECK(replies.at("nostatus")->meta.error == "bad_response: neither :method nor :status");
  CHECK(h.failed("bad_response") == 2);
}

TEST_CASE("GOAWAY: the streams the target did not process go out again on a new connection") {
  // Each connection answers 5 requests, then GOAWAY names the 5th as the last it processed.
  ScriptedH2Server server([](const H2Request& r) { return grpc_ok(r.headers.at(":path")); }, 5);
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()}, {"track_response", true}}));
  const int n = 23;
  for (int i = 0; i < n; ++i) h.process(h2_get("/g" + std::to_string(i), "g" + std::to_string(i)));
  h.flush();
  auto replies = by_id(h.emitted());
  REQUIRE(replies.size() == n);
  for (int i = 0; i < n; ++i) {
    auto& m = replies.at("g" + std::to_string(i));
    INFO(m->meta.error);
    CHECK(m->meta.error.empty());
    CHECK(m->payload.find("/g" + std::to_string(i) + "\r\n0\r\n") != std::string::npos);
  }
  CHECK(server.requests().size() == n);  // each processed once
  CHECK(server.connections() >= 5);
  CHECK(h.stage().pending() == 0);
}

TEST_CASE("connection loss: every stream in flight ends as an error, counted, none lost") {
  ScriptedH2Server server([](const H2Request& r) {
    return H2Action::of(r.headers.at(":path") == "/close" ? H2Action::Kind::close_connection : H2Action::Kind::silent);
  });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()}, {"track_response", true}}));
  for (int i = 0; i < 5; ++i) h.process(h2_get("/wait", "w" + std::to_string(i)));
  REQUIRE(h.wait_until([&] { return server.requests().size() == 5; }));
  h.process(h2_get("/close", "close"));
  h.flush();
  auto replies = by_id(h.emitted());
  REQUIRE(replies.size() == 6);
  for (auto& [id, m] : replies) CHECK(m->meta.error.starts_with("reset: connection lost"));
  CHECK(h.failed("reset") == 6);
  CHECK(h.stage().pending() == 0);
}

TEST_CASE("a dead target: every request fails as refused, with meta.proto = h2") {
  int port = dead_port();
  testing::StageHarness h(http_plugin(), Value::table({{"url", "http://127.0.0.1:" + std::to_string(port)},
                                                       {"track_response", true}}));
  for (int i = 0; i < 7; ++i) h.process(h2_get("/", "d" + std::to_string(i)));
  h.flush();
  auto replies = h.emitted();
  REQUIRE(replies.size() == 7);
  for (auto& m : replies) {
    CHECK(m->meta.error == "refused");
    CHECK(m->meta.proto == "h2");
  }
  CHECK(h.failed("refused") == 7);
}

TEST_CASE("the target's SETTINGS_MAX_CONCURRENT_STREAMS and h2_max_streams bound the streams per connection") {
  // Silent until all arrived would deadlock a limit; the server answers at once instead, and
  // the limit shows as more connections: 30 requests in flight, 4 streams per connection.
  ScriptedH2Server server([](const H2Request&) { return grpc_ok("x"); });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()},
                                                       {"track_response", true},
                                                       {"h2_max_streams", 4},
                                                       {"workers", 30}}));
  for (int i = 0; i < 30; ++i) h.process(h2_get("/m", "m" + std::to_string(i)));
  h.flush();
  auto replies = h.emitted();
  REQUIRE(replies.size() == 30);
  for (auto& m : replies) CHECK(m->meta.error.empty());
  std::map<int, int> per_connection;
  for (auto& r : server.requests()) ++per_connection[r.connection];
  CHECK(per_connection.size() >= 2);
}

TEST_CASE("session-aware h2 replay: each session in order on an HTTP/2 connection of its own") {
  ScriptedH2Server server([](const H2Request&) { return grpc_ok("x"); });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()},
                                                       {"track_response", true},
                                                       {"session", "header:x-session"}}));
  const int sessions = 3, per_session = 6;
  for (int i = 0; i < per_session; ++i)
    for (int s = 0; s < sessions; ++s)
      h.process(h2_get("/s" + std::to_string(s) + "/" + std::to_string(i), "s" + std::to_string(s) + "-" + std::to_string(i),
                       "x-session: " + std::to_string(s) + "\r\n"));
  h.flush();
  REQUIRE(h.emitted().size() == sessions * per_session);
  for (auto& m : h.emitted()) CHECK(m->meta.error.empty());
  std::map<std::string, std::vector<std::pair<int, std::string>>> seen;  // session -> (connection, path)
  for (auto& r : server.requests()) seen[r.headers.at("x-session")].emplace_back(r.connection, r.headers.at(":path"));
  REQUIRE(seen.size() == sessions);
  std::set<int> connections;
  for (auto& [session, arrivals] : seen) {
    REQUIRE(arrivals.size() == per_session);
    for (int i = 0; i < per_session; ++i) {
      CHECK(arrivals[i].first == arrivals[0].first);  // one connection per session
      CHECK(arrivals[i].second == "/s" + session + "/" + std::to_string(i));  // captured order
    }
    connections.insert(arrivals[0].first);
  }
  CHECK(connections.size() == sessions);
}

TEST_CASE("protocol = \"h2\" sends HTTP/1.x messages over HTTP/2 too") {
  ScriptedH2Server server([](const H2Request&) { return grpc_ok("x"); });
  testing::StageHarness h(http_plugin(),
                          Value::table({{"url", server.url()}, {"track_response", true}, {"protocol", "h2"}}));
  h.process(testing::make_message(Kind::request, "GET /plain HTTP/1.1\r\nHost: prod\r\n\r\n", "plain"));
  h.flush();
  REQUIRE(server.requests().size() == 1);
  CHECK(server.requests()[0].headers.at(":path") == "/plain");
  REQUIRE(h.emitted().size() == 1);
  CHECK(h.emitted()[0]->meta.proto == "h2");
}

TEST_CASE("an HTTP/1.1-only target: auto falls back to HTTP/1.1, h2 fails per request, h1 never tries") {
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  auto script = [&](const std::string& request) {
    // What an HTTP/1.1 server makes of the HTTP/2 preface.
    if (request.starts_with("PRI * HTTP/2.0"))
      return testing::ScriptedReply{"HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Length: 0\r\n\r\n", true};
    return testing::ScriptedReply{ok};
  };
  SUBCASE("auto") {
    testing::ScriptedServer server(script);
    testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()}, {"track_response", true}}));
    for (int i = 0; i < 10; ++i) h.process(h2_get("/f", "f" + std::to_string(i)));
    h.flush();
    for (int i = 0; i < 10; ++i) h.process(h2_get("/later", "l" + std::to_string(i)));
    h.flush();
    auto replies = h.emitted();
    REQUIRE(replies.size() == 20);
    for (auto& m : replies) {
      CHECK(m->payload == ok);
      CHECK(m->meta.error.empty());
      CHECK(m->meta.proto.empty());  // went out over HTTP/1.1
    }
    int prefaces = 0;
    for (auto& r : server.requests()) prefaces += r.starts_with("PRI * HTTP/2.0") ? 1 : 0;
    CHECK(prefaces == 1);  // learnt once, for the target
  }
  SUBCASE("h2") {
    testing::ScriptedServer server(script);
    testing::StageHarness h(http_plugin(),
                            Value::table({{"url", server.url()}, {"track_response", true}, {"protocol", "h2"}}));
    for (int i = 0; i < 4; ++i) h.process(h2_get("/f", "f" + std::to_string(i)));
    h.flush();
    auto replies = h.emitted();
    REQUIRE(replies.size() == 4);
    for (auto& m : replies) CHECK(m->meta.error == "no_h2: the target answered the HTTP/2 preface as an HTTP/1.x server");
    CHECK(h.failed("no_h2") == 4);
  }
  SUBCASE("h1") {
    testing::ScriptedServer server(script);
    testing::StageHarness h(http_plugin(),
                            Value::table({{"url", server.url()}, {"track_response", true}, {"protocol", "h1"}}));
    h.process(h2_get("/f", "f"));
    h.flush();
    REQUIRE(h.emitted().size() == 1);
    CHECK(h.emitted()[0]->payload == ok);
    REQUIRE(server.requests().size() == 1);
    CHECK(server.requests()[0] == "GET /f HTTP/1.1\r\nhost: 127.0.0.1:" + std::to_string(server.port()) +
                                      "\r\nAccept: */*\r\n\r\n");
  }
}

TEST_CASE("several I/O threads: connections on strands of their own, every request answered once") {
  ScriptedH2Server server([](const H2Request& r) { return grpc_ok(r.headers.at(":path")); });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()},
                                                       {"track_response", true},
                                                       {"io_threads", 4},
                                                       {"h2_max_streams", 8},
                                                       {"overflow", "wait"}}));
  const int n = 500;
  for (int i = 0; i < n; ++i) h.process(h2_get("/t" + std::to_string(i), "t" + std::to_string(i)));
  h.flush();
  auto replies = by_id(h.emitted());
  REQUIRE(replies.size() == n);
  for (int i = 0; i < n; ++i) {
    auto& m = replies.at("t" + std::to_string(i));
    CHECK(m->meta.error.empty());
    CHECK(m->payload.find("/t" + std::to_string(i) + "\r\n0\r\n") != std::string::npos);
  }
  CHECK(server.requests().size() == n);
  CHECK(server.connections() >= 2);
}
