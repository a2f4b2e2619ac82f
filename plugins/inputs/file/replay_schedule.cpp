#include "replay_schedule.hpp"

namespace doppel::plugins {

std::chrono::nanoseconds ReplaySchedule::gap_before(std::int64_t timestamp_ns) {
  using std::chrono::nanoseconds;
  bool first = !last_.has_value();
  std::int64_t recorded = first ? 0 : timestamp_ns - *last_;
  if (!first && recorded < 0) ++out_of_order_;
  // An out-of-order record does not move the clock back: later gaps count from the newest.
  if (first || recorded >= 0) last_ = timestamp_ns;
  if (first || timing_.max_speed) return nanoseconds::zero();

  nanoseconds wait{0};
  if (timing_.fixed_rate) {
    wait = nanoseconds(static_cast<std::int64_t>(1e9 / *timing_.fixed_rate));
  } else if (recorded > 0) {
    wait = nanoseconds(static_cast<std::int64_t>(static_cast<double>(recorded) / timing_.speed_factor));
  }
  if (timing_.max_wait > nanoseconds::zero() && wait > timing_.max_wait) {
    wait = timing_.max_wait;
    ++capped_;
  }
  return wait;
}

}  // namespace doppel::plugins
