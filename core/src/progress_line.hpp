#pragma once
// The line `doppel run` keeps rewriting on a terminal while its inputs read files: records and
// bytes read, the percentage of the input, the rate and the time left. Inputs take part by
// declaring the gauges `progress.bytes_read` and `progress.bytes_total` (0: size unknown).
// When stderr is not a terminal the periodic stats line is printed instead.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace doppel::core {

struct InputProgress {
  std::uint64_t records = 0;     // messages the inputs emitted
  std::uint64_t bytes_read = 0;  // of their files
  std::uint64_t bytes_total = 0;  // 0 when one input's size is unknown
  bool finished = false;          // every input that reports progress has ended
};

class ProgressLine {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ProgressLine(Clock::time_point start) : start_(start) {}

  // "progress: 1.2M records  412.0 MiB of 1.6 GiB (25.7%)  48.2k records/s  20.1 MiB/s  ETA 1m02s".
  // Rates are averages since the start; the percentage and ETA are left out when the total is
  // unknown, the ETA also until a second has passed; "done" once the inputs have ended.
  std::string render(const InputProgress& progress, Clock::time_point now) const;

 private:
  Clock::time_point start_;
};

// 1536 -> "1.5 KiB"; below 1 KiB: "512 B".
std::string format_bytes(std::uint64_t bytes);
// 62s -> "1m02s", 3725s -> "1h02m05s", 9s -> "9s".
std::string format_eta(std::chrono::seconds left);

}  // namespace doppel::core
