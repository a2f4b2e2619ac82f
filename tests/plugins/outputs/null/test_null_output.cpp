#include <doctest/doctest.h>

#include "doppel/testing.hpp"

using namespace doppel;

TEST_CASE("null output counts messages by kind and payload bytes, and emits nothing") {
  testing::StageHarness h(testing::linked_plugin("null"), Value::table({}));
  std::vector<std::string> payloads = {"GET / HTTP/1.1\r\n\r\n", "GET /a HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n",
                                       "", "{}"};
  std::vector<Kind> kinds = {Kind::request, Kind::request, Kind::response, Kind::replay, Kind::verdict};
  std::size_t total = 0;
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    h.process(testing::make_message(kinds[i], payloads[i]));
    total += payloads[i].size();
  }
  h.flush();
  h.stop();
  CHECK(h.counter("requests").value() == 2);
  CHECK(h.counter("responses").value() == 1);
  CHECK(h.counter("replays").value() == 1);
  CHECK(h.counter("verdicts").value() == 1);
  CHECK(h.counter("payload_bytes").value() == total);
  CHECK(h.emitted().empty());
  CHECK(testing::linked_plugin("null").accepts == KindSet::all());
}
