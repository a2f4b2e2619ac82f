#include <doctest/doctest.h>

#include <map>

#include "doppel/testing.hpp"
#include "loopback_port.hpp"
#include "scripted_server.hpp"

using namespace doppel;
using doppel::testing::make_message;
using doppel::testing::ScriptedReply;
using doppel::testing::ScriptedServer;
using namespace std::chrono_literals;

namespace {

const PluginDefinition& http_plugin() { return testing::linked_plugin("http"); }

MessagePtr get(const std::string& target, const std::string& id = "") {
  return make_message(Kind::request, "GET " + target + " HTTP/1.1\r\nHost: prod\r\n\r\n", id);
}

std::map<std::string, MessagePtr> by_id(const std::vector<MessagePtr>& messages) {
  std::map<std::string, MessagePtr> out;
  for (auto& m : messages) out[m->id] = m;
  return out;
}

const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

}  // namespace

TEST_CASE("requests arrive with the target's Host and base path; responses come back as replay") {
  ScriptedServer server([](const std::string&) { return ScriptedReply{kOk}; });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url() + "/base"},
                                                       {"workers", 1},
                                                       {"track_response", true}}));
  CHECK(h.stage().produces() == KindSet{Kind::replay});
  for (int i = 0; i < 5; ++i) h.process(get("/a?i=" + std::to_string(i), "id" + std::to_string(i)));
  h.flush();
  CHECK(h.stage().pending() == 0);
  auto out = h.emitted();
  REQUIRE(out.size() == 5);
  auto replies = by_id(out);
  for (int i = 0; i < 5; ++i) {
    auto& m = replies.at("id" + std::to_string(i));
    CHECK(m->kind == Kind::replay);
    CHECK(m->payload == kOk);
    CHECK(m->meta.error.empty());
    CHECK(m->latency_ns > 0);
    CHECK(m->timestamp_ns > 0);
  }
  auto requests = server.requests();
  REQUIRE(requests.size() == 5);
  CHECK(requests[0] == "GET /base/a?i=0 HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n\r\n");
  CHECK(server.connections() == 1);  // one worker, kept alive for all five
}

TEST_CASE("original_host keeps the captured Host; bodies go out byte for byte") {
  ScriptedServer server([](const std::string&) { return ScriptedReply{kOk}; });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()}, {"original_host", true}}));
  std::string body(100000, 'x');
  std::string request = "POST /upload HTTP/1.1\r\nHost: prod.example.com\r\nX-Odd:   spaced\t\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body;
  h.process(make_message(Kind::request, request));
  h.flush();
  REQUIRE(server.requests().size() == 1);
  CHECK(server.requests()[0] == request);
  CHECK(h.emitted().empty());  // not tracking
  CHECK(h.stage().produces() == KindSet{});
}

TEST_CASE("response framing: chunked, close-delimited, HEAD, 204, 304 and interim 100") {
  const std::map<std::string, ScriptedReply> script = {
      {"/chunked", {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"}},
      {"/close", {"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", true}},
      {"/head", {"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"}},
      {"/nocontent", {"HTTP/1.1 204 No Content\r\n\r\n"}},
      {"/notmodified", {"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"}},
      {"/continue", {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew"}},
  };
  ScriptedServer server([&](const std::string& request) {
    auto target = request.substr(request.find(' ') + 1);
    target = target.substr(0, target.find(' '));
    return script.at(target);
  });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()}, {"workers", 1}, {"track_response", true}}));
  for (auto& [path, reply] : script) {
    std::string method = path == "/head" ? "HEAD" : "GET";
    h.process(make_message(Kind::request, method + " " + path + " HTTP/1.1\r\nHost: a\r\n\r\n", path.substr(1)));
  }
  h.flush();
  auto replies = by_id(h.emitted());
  REQUIRE(replies.size() == script.size());
  CHECK(replies.at("chunked")->payload == script.at("/chunked").bytes);
  CHECK(replies.at("close")->payload == script.at("/close").bytes);
  CHECK(replies.at("head")->payload == script.at("/head").bytes);
  CHECK(replies.at("nocontent")->payload == script.at("/nocontent").bytes);
  CHECK(replies.at("notmodified")->payload == script.at("/notmodified").bytes);
  CHECK(replies.at("continue")->payload == "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew");
  for (auto& [id, m] : replies) CHECK_MESSAGE(m->meta.error.empty(), id);
  CHECK(h.failed("reset") == 0);
  CHECK(server.connections() == 2);  // only the close-delimited response ended a connection
}

TEST_CASE("a dead port: every request counted as refused and answered by an error replay") {
  auto port = testing::unused_loopback_port();
  testing::StageHarness h(http_plugin(), Value::table({{"url", "http://127.0.0.1:" + std::to_string(port)},
                                                       {"track_response", true}}));
  for (int i = 0; i < 20; ++i) h.process(get("/x"));
  h.flush();
  CHECK(h.failed("refused") == 20);
  auto out = h.emitted();
  REQUIRE(out.size() == 20);
  for (auto& m : out) {
    CHECK(m->kind == Kind::replay);
    CHECK(m->meta.error == "refused");
    CHECK(m->payload.empty());
  }
}

TEST_CASE("timeout, reset and bad_response are told apart") {
  ScriptedServer server([](const std::string& request) {
    if (request.starts_with("GET /slow")) return ScriptedReply{kOk, false, 1500ms};
    if (request.starts_with("GET /cut")) return ScriptedReply{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true};
    return ScriptedReply{"SSH-2.0-OpenSSH_9.2\r\n\r\n"};
  });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()},
                                                       {"timeout", "300ms"},
                                                       {"track_response", true}}));
  h.process(get("/slow", "slow"));
  h.process(get("/cut", "cut"));
  h.process(get("/garbage", "garbage"));
  h.flush();
  auto replies = by_id(h.emitted());
  REQUIRE(replies.size() == 3);
  CHECK(replies.at("slow")->meta.error == "timeout");
  CHECK(replies.at("cut")->meta.error == "reset");
  CHECK(replies.at("garbage")->meta.error == "bad_response");
  CHECK(h.failed("timeout") == 1);
  CHECK(h.failed("reset") == 1);
  CHECK(h.failed("bad_response") == 1);
  CHECK(replies.at("slow")->latency_ns >= 300'000'000);
}

TEST_CASE("behind a live capture, a slow target's excess is dropped as queue_full (the default there)") {
  ScriptedServer server([](const std::string&) { return ScriptedReply{kOk, false, 200ms}; });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()},
                                                       {"workers", 1},
                                                       {"queue_size", 2},
                                                       {"track_response", true}}));
  h.set_overflow_policy(OverflowPolicy::drop);  // what the runtime says when a live input feeds the stage
  for (int i = 0; i < 10; ++i) h.process(get("/x"));
  CHECK(h.dropped("queue_full") == 7);  // one in flight, two waiting
  CHECK(h.stage().pending() == 3);
  h.flush();
  CHECK(h.stage().pending() == 0);
  CHECK(h.emitted().size() == 3);
}

TEST_CASE("overflow = wait holds the caller back instead of dropping") {
  ScriptedServer server([](const std::string&) { return ScriptedReply{kOk, false, 20ms}; });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()},
                                                       {"workers", 2},
                                                       {"queue_size", 1},
                                                       {"overflow", "wait"},
                                                       {"track_response", true}}));
  for (int i = 0; i < 12; ++i) h.process(get("/x"));
  h.flush();
  CHECK(h.drops().empty());
  CHECK(h.emitted().size() == 12);
}

TEST_CASE("by default, behind inputs that can wait, a slow target holds the caller back; overflow = drop overrides") {
  ScriptedServer server([](const std::string&) { return ScriptedReply{kOk, false, 20ms}; });
  testing::StageHarness waits(http_plugin(), Value::table({{"url", server.url()},
                                                           {"workers", 1},
                                                           {"queue_size", 1},
                                                           {"track_response", true}}));  // harness: fed by a file
  for (int i = 0; i < 8; ++i) waits.process(get("/x"));
  waits.flush();
  CHECK(waits.drops().empty());
  CHECK(waits.emitted().size() == 8);
  testing::StageHarness drops(http_plugin(), Value::table({{"url", server.url()},
                                                           {"workers", 1},
                                                           {"queue_size", 1},
                                                           {"track_response", true},
                                                           {"overflow", "drop"}}));
  for (int i = 0; i < 8; ++i) drops.process(get("/x"));
  drops.flush();
  CHECK(drops.dropped("queue_full") == 6);  // one in flight, one waiting
}

TEST_CASE("a kept-alive connection the target closed while idle is retried on a fresh one") {
  // The server closes silently after every response, without announcing it.
  ScriptedServer server([](const std::string&) { return ScriptedReply{kOk, true}; });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()}, {"workers", 1}, {"track_response", true}}));
  for (int i = 0; i < 4; ++i) {
    h.process(get("/x"));
    h.flush();
    std::this_thread::sleep_for(20ms);  // let the close arrive while the connection is idle
  }
  auto out = h.emitted();
  REQUIRE(out.size() == 4);
  for (auto& m : out) CHECK(m->payload == kOk);
  CHECK(h.failed("reset") == 0);
  CHECK(server.connections() == 4);
}

TEST_CASE("what is not an HTTP request is dropped with a reason") {
  ScriptedServer server([](const std::string&) { return ScriptedReply{kOk}; });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()}}));
  h.process(make_message(Kind::request, "\x01\x02 binary"));
  h.flush();
  CHECK(h.dropped("unparseable_request") == 1);
  CHECK(server.requests().empty());
}

TEST_CASE("configuration errors name the option") {
  CHECK_THROWS_WITH_AS(testing::StageHarness(http_plugin(), Value::table({{"url", "ftp://x"}})),
                       doctest::Contains("expected http://"), ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(http_plugin(), Value::table({{"url", "http://x"}, {"workers", 0}})),
                       doctest::Contains("workers"), ConfigError);
  CHECK_THROWS(testing::StageHarness(http_plugin(), Value::table({{"url", "http://x"}, {"overflow", "block"}})));
}

TEST_CASE("TLS options that cannot work are refused at configuration, naming the option") {
  auto refused = [](std::initializer_list<std::pair<std::string, Value>> extra, const char* text) {
    Value::Table options{{"url", "https://127.0.0.1:1"}};
    options.insert(options.end(), extra.begin(), extra.end());
    CHECK_THROWS_WITH_AS(testing::StageHarness(http_plugin(), Value(options)), doctest::Contains(text), ConfigError);
  };
  refused({{"tls_cert", "c.pem"}}, "tls_cert needs tls_key");
  refused({{"tls_key", "k.pem"}}, "tls_key needs tls_cert");
  refused({{"tls_ca", "ca.pem"}, {"tls_skip_verify", true}}, "tls_ca has no effect with tls_skip_verify");
  refused({{"tls_ca", "/nonexistent/ca.pem"}}, "tls_ca: cannot read \"/nonexistent/ca.pem\"");
  refused({{"tls_cert", "/nonexistent/c.pem"}, {"tls_key", "/nonexistent/k.pem"}}, "tls_cert: cannot read");
  refused({{"tls_server_name", "not a name"}}, "tls_server_name must be a DNS name or an IP address");
  CHECK_THROWS_WITH_AS(testing::StageHarness(http_plugin(), Value::table({{"url", "http://x"}, {"tls_ca", "ca.pem"}})),
                       doctest::Contains("tls_ca applies to https:// targets only"), ConfigError);
}

TEST_CASE("several I/O threads: every request replayed once, each connection on its own strand") {
  ScriptedServer server([](const std::string& request) {
    // Echo the request's path so a mixed-up response would show.
    auto path = request.substr(4, request.find(' ', 4) - 4);
    return ScriptedReply{"HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(path.size()) + "\r\n\r\n" + path};
  });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()},
                                                       {"workers", 8},
                                                       {"io_threads", 3},
                                                       {"track_response", true}}));
  for (int i = 0; i < 200; ++i) h.process(get("/p" + std::to_string(i), "id" + std::to_string(i)));
  h.flush();
  auto replies = by_id(h.emitted());
  REQUIRE(replies.size() == 200);
  for (int i = 0; i < 200; ++i) {
    std::string path = "/p" + std::to_string(i);
    CHECK(replies.at("id" + std::to_string(i))->http().raw_body() == path);
  }
  CHECK(server.requests().size() == 200);
  CHECK(server.connections() <= 8);
}

TEST_CASE("untracked responses are framed and counted, not kept") {
  ScriptedServer server([](const std::string&) { return ScriptedReply{kOk}; });
  testing::StageHarness h(http_plugin(), Value::table({{"url", server.url()}, {"workers", 2}}));
  for (int i = 0; i < 20; ++i) h.process(get("/u" + std::to_string(i)));
  h.flush();
  CHECK(h.emitted().empty());
  CHECK(h.counter("responses").value() == 20);
  CHECK(h.counter("sent").value() == 20);
  CHECK(server.requests().size() == 20);
  CHECK(server.connections() <= 2);
}
