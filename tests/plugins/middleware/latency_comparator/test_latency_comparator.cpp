#include <doctest/doctest.h>

#include "doppel/testing.hpp"

using namespace doppel;

namespace {
std::unique_ptr<Comparator> make(const Value& options = Value::table({})) {
  auto& def = testing::linked_plugin("latency");
  return def.create_comparator(testing::validated_options(def, options));
}
Exchange make_exchange(std::int64_t original_ms, std::int64_t replay_ms) {
  Message a(Kind::response, "x", 0, "HTTP/1.1 200 OK\r\n\r\n");
  a.latency_ns = original_ms * 1000000;
  Message b(Kind::replay, "x", 0, "HTTP/1.1 200 OK\r\n\r\n");
  b.latency_ns = replay_ms * 1000000;
  return {nullptr, share(std::move(a)), share(std::move(b))};
}
}  // namespace

TEST_CASE("latency: replay <= factor x original + slack passes") {
  auto c = make(Value::table({{"factor", 1.5}, {"slack", "10ms"}}));
  CHECK(c->compare(make_exchange(100, 160)).empty());  // limit 160ms
  auto d = c->compare(make_exchange(100, 161));
  REQUIRE(d.size() == 1);
  CHECK(d[0].path == "latency");
  CHECK(d[0].kind == "slower");
  CHECK(d[0].original == "100ms");
  CHECK(d[0].replay == "161ms (limit 160ms)");
}

TEST_CASE("latency: defaults (2x + 50ms) and bad options") {
  auto c = make();
  CHECK(c->compare(make_exchange(1, 52)).empty());
  CHECK(c->compare(make_exchange(1, 53)).size() == 1);
  CHECK_THROWS_AS(make(Value::table({{"factor", 0}})), ConfigError);
}
