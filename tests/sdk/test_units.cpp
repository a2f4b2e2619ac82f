#include <doctest/doctest.h>

#include "doppel/units.hpp"

using namespace doppel;
using namespace std::chrono_literals;

TEST_CASE("durations") {
  CHECK(parse_duration("250ms") == 250ms);
  CHECK(parse_duration("5s") == 5s);
  CHECK(parse_duration("1m30s") == 90s);
  CHECK(parse_duration("2h") == 2h);
  CHECK(parse_duration("1.5s") == 1500ms);
  CHECK(parse_duration("100us") == 100us);
  CHECK(parse_duration("10ns") == 10ns);
  CHECK(parse_duration("0s") == 0s);
  CHECK_THROWS_WITH_AS(parse_duration("5"), doctest::Contains("expected a number with a unit"), std::invalid_argument);
  CHECK_THROWS_AS(parse_duration("5 parsecs"), std::invalid_argument);
  CHECK_THROWS_AS(parse_duration(""), std::invalid_argument);
  CHECK_THROWS_AS(parse_duration("-5s"), std::invalid_argument);
  CHECK(format_duration(1500ms) == "1.5s");
  CHECK(format_duration(250ms) == "250ms");
  CHECK(format_duration(2min) == "2m");
}

TEST_CASE("sizes") {
  CHECK(parse_size("64MiB") == 64ull << 20);
  CHECK(parse_size("10MB") == 10'000'000ull);
  CHECK(parse_size("512KiB") == 512ull << 10);
  CHECK(parse_size("1GiB") == 1ull << 30);
  CHECK(parse_size("100") == 100);
  CHECK(parse_size("1.5KiB") == 1536);
  CHECK_THROWS_WITH_AS(parse_size("10 bananas"), doctest::Contains("invalid size"), std::invalid_argument);
  CHECK(format_size(64ull << 20) == "64MiB");
  CHECK(format_size(1000) == "1000B");
}

TEST_CASE("rates") {
  CHECK(parse_rate("100%") == Rate{Rate::Unit::percent, 100});
  CHECK(parse_rate("200%") == Rate{Rate::Unit::percent, 200});
  CHECK(parse_rate("1000/s") == Rate{Rate::Unit::per_second, 1000});
  CHECK(parse_rate("60/m").value == doctest::Approx(1.0));
  CHECK(parse_rate("3600/h").value == doctest::Approx(1.0));
  CHECK_THROWS_AS(parse_rate("fast"), std::invalid_argument);
  CHECK_THROWS_AS(parse_rate("10/fortnight"), std::invalid_argument);
  CHECK(format_rate(parse_rate("50%")) == "50%");
}
