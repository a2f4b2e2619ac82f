#pragma once
#include <chrono>
#include <cstdint>
#include <optional>

namespace doppel::plugins {

// How a file input paces requests.
struct ReplayTiming {
  bool max_speed = false;                // no waiting at all
  double speed_factor = 1.0;             // "200%" -> 2.0: recorded gaps are halved
  std::optional<double> fixed_rate;      // "1000/s": evenly spaced, timestamps ignored
  std::chrono::nanoseconds max_wait{0};  // cap on one wait; 0 = none
};

// Turns recorded request timestamps into the wait before each request. Used both to replay
// (the input sleeps until the running total) and for --dry-run (the total is the duration).
class ReplaySchedule {
 public:
  explicit ReplaySchedule(ReplayTiming timing) : timing_(timing) {}

  // The wait between the previous request and one recorded at `timestamp_ns`. The first
  // request (and the first after restart()) waits nothing; a timestamp older than the
  // previous one (out of order) waits nothing and is counted.
  std::chrono::nanoseconds gap_before(std::int64_t timestamp_ns);
  // Loop: the next request starts the new pass at once.
  void restart() { last_ = std::nullopt; }

  std::uint64_t out_of_order() const { return out_of_order_; }
  std::uint64_t capped() const { return capped_; }  // waits shortened by max_wait
  const ReplayTiming& timing() const { return timing_; }

 private:
  ReplayTiming timing_;
  std::optional<std::int64_t> last_;
  std::uint64_t out_of_order_ = 0;
  std::uint64_t capped_ = 0;
};

}  // namespace doppel::plugins
