// Units of the nats input that need no server: `deliver = "since:..."` times, pacing, options.
#include <doctest/doctest.h>

#include "nats_input.hpp"
#include "doppel/testing.hpp"

using namespace doppel;
using doppel::plugins::NatsPacer;
using doppel::plugins::NatsPacing;
using doppel::plugins::parse_timestamp;

TEST_CASE("deliver since: UTC times with minutes, seconds, fractions and offsets") {
  CHECK(parse_timestamp("2026-11-25T10:00Z") == std::optional<std::int64_t>(1795600800LL * 1000000000));
  CHECK(parse_timestamp("2026-11-25T10:00:30Z") == std::optional<std::int64_t>(1795600830LL * 1000000000));
  CHECK(parse_timestamp("2026-11-25T10:00:30.25Z") ==
        std::optional<std::int64_t>(1795600830LL * 1000000000 + 250000000));
  CHECK(parse_timestamp("2026-11-25T11:00+01:00") == parse_timestamp("2026-11-25T10:00Z"));
  CHECK_FALSE(parse_timestamp("2026-11-25T10:00"));    // no zone: ambiguous
  CHECK_FALSE(parse_timestamp("2026-13-25T10:00Z"));   // month 13
  CHECK_FALSE(parse_timestamp("yesterday"));
}

TEST_CASE("pacing keeps recorded gaps from the first request, scaled by speed") {
  auto t0 = std::chrono::steady_clock::time_point(std::chrono::seconds(100));
  NatsPacer pacer(NatsPacing{false, 2.0, std::nullopt});
  CHECK(pacer.due(1'000'000'000, t0) == t0);                                       // anchor
  CHECK(pacer.due(3'000'000'000, t0) == t0 + std::chrono::seconds(1));             // 2s recorded, 200%
  CHECK(pacer.due(500'000'000, t0 + std::chrono::seconds(5)) == t0 + std::chrono::seconds(5));  // out of order
  NatsPacer fast(NatsPacing{true, 1.0, std::nullopt});
  CHECK(fast.due(1, t0) == t0);
  CHECK(fast.due(9'000'000'000, t0) == t0);
}

TEST_CASE("options: deliver and connection settings are checked before start") {
  const auto& def = testing::linked_plugin("nats");
  auto build = [&](Value options) {
    auto validated = testing::validated_options(def, options);
    return def.create_stage(validated);
  };
  CHECK_NOTHROW(build(Value::table({{"deliver", "since:2026-11-25T10:00Z"}})));
  CHECK_THROWS_WITH_AS(build(Value::table({{"deliver", "since:noon"}})),
                       doctest::Contains("is not a UTC time"), ConfigError);
  CHECK_THROWS_WITH_AS(build(Value::table({{"deliver", "latest"}})), doctest::Contains("expected \"all\""),
                       ConfigError);
  CHECK_THROWS_WITH_AS(build(Value::table({{"tls_cert", "c.pem"}})), doctest::Contains("go together"), ConfigError);
  CHECK_THROWS_WITH_AS(build(Value::table({{"token", "t"}, {"user", "u"}})), doctest::Contains("choose one"),
                       ConfigError);
  CHECK_THROWS_WITH_AS(build(Value::table({{"ack_wait", "10ms"}})), doctest::Contains("1s or more"), ConfigError);
}
