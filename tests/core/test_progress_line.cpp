// The progress line of a file replay on a terminal (core/src/progress_line.hpp).
#include <doctest/doctest.h>

#include "progress_line.hpp"

using namespace doppel::core;
using namespace std::chrono_literals;

TEST_CASE("byte and ETA formats") {
  CHECK(format_bytes(0) == "0 B");
  CHECK(format_bytes(1023) == "1023 B");
  CHECK(format_bytes(1536) == "1.5 KiB");
  CHECK(format_bytes(std::uint64_t{3} << 30) == "3.0 GiB");
  CHECK(format_eta(9s) == "9s");
  CHECK(format_eta(62s) == "1m02s");
  CHECK(format_eta(3725s) == "1h02m05s");
  CHECK(format_eta(-5s) == "0s");
}

TEST_CASE("the line: records, bytes of the total, rates, ETA, done") {
  auto start = ProgressLine::Clock::time_point{} + 100s;
  ProgressLine line(start);
  InputProgress p{50'000, std::uint64_t{256} << 20, std::uint64_t{1} << 30, false};
  // A quarter in 10 s: 30 s left at the same rate.
  CHECK(line.render(p, start + 10s) ==
        "progress: 50.0k records  256.0 MiB of 1.0 GiB (25.0%)  5000 records/s  25.6 MiB/s  ETA 30s");
  // Before a second has passed the rate says too little for an ETA.
  CHECK(line.render(p, start + 500ms).find("ETA") == std::string::npos);
  // Read to the end but the inputs still running (records in flight): no ETA, not done.
  InputProgress all{200'000, std::uint64_t{1} << 30, std::uint64_t{1} << 30, false};
  CHECK(line.render(all, start + 40s) == "progress: 200.0k records  1.0 GiB of 1.0 GiB (100.0%)  5000 records/s  25.6 MiB/s");
  all.finished = true;
  CHECK(line.render(all, start + 40s).ends_with("  done"));
  // Unknown total (standard input, a loop): no percentage, no ETA.
  InputProgress open{10, 4096, 0, false};
  CHECK(line.render(open, start + 2s) == "progress: 10 records  4.0 KiB  5 records/s  2.0 KiB/s");
}
