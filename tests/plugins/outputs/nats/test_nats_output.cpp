// The nats output against a real nats-server: a message relayed from a source that leases it
// (another stream, through the nats input) is released only once this stream stored it.
#include <doctest/doctest.h>

#include <thread>

#include "doppel/testing.hpp"
#include "nats_test_server.hpp"

using namespace doppel;
using namespace std::chrono_literals;

namespace {
MessagePtr leased(Kind kind, const std::string& id, std::string payload, std::shared_ptr<const void> lease) {
  Message m(kind, id, 1700000000000000000, std::move(payload));
  m.lease = std::move(lease);
  return share(std::move(m));
}
}  // namespace

TEST_CASE("relayed messages hold their sources' leases until the stream acknowledged them") {
  testing::NatsServer server(false);  // not up yet: the output buffers what it is given
  testing::StageHarness h(testing::linked_plugin("nats"),
                          Value::table({{"servers", Value::array({server.url()})},
                                        {"create_stream", true},
                                        {"reconnect_wait", "50ms"}}));
  h.start();
  std::weak_ptr<const void> request_source, response_source;
  {
    auto a = std::make_shared<int>(1);
    auto b = std::make_shared<int>(2);
    request_source = a;
    response_source = b;
    h.process(leased(Kind::request, "r1", "GET /a HTTP/1.1\r\nHost: a\r\n\r\n", a));
    h.process(leased(Kind::response, "r1", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b));
  }
  std::this_thread::sleep_for(300ms);
  CHECK_FALSE(request_source.expired());  // paired, buffered, stored nowhere yet
  CHECK_FALSE(response_source.expired());
  server.start();
  REQUIRE(h.wait_until([&] { return request_source.expired() && response_source.expired(); }, 15s));
  CHECK(server.stream_messages("DOPPEL") == 1);  // one NATS message for the pair
  h.stop();
}

TEST_CASE("requests held for pairing stay within pair_capacity; the oldest goes alone, counted") {
  testing::NatsServer server(true);
  testing::StageHarness h(testing::linked_plugin("nats"),
                          Value::table({{"servers", Value::array({server.url()})},
                                        {"create_stream", true},
                                        {"pair_capacity", 3},
                                        {"pair_timeout", "1h"}}));
  h.start();
  for (int i = 0; i < 10; ++i)
    h.process(leased(Kind::request, "q" + std::to_string(i), "GET /q HTTP/1.1\r\nHost: a\r\n\r\n", nullptr));
  CHECK(h.gauge("table.held_requests").value() == 3);
  CHECK(h.gauge("held").value() == 3);
  CHECK(h.counter("unpaired_requests").value() == 7);
  for (int i = 7; i < 10; ++i)
    h.process(leased(Kind::response, "q" + std::to_string(i), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", nullptr));
  CHECK(h.gauge("table.held_requests").value() == 0);
  CHECK(h.counter("paired").value() == 3);
  h.flush();
  CHECK(server.stream_messages("DOPPEL") == 10);  // seven alone, three pairs
  h.stop();
}
