#pragma once
// The one parser for each unit in pipeline files: durations, sizes, rates.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace doppel {

// "250ms", "5s", "1m30s", "2h", "1.5s", "100us", "10ns"; a bare number is refused.
// Throws std::invalid_argument with a message saying what is accepted.
std::chrono::nanoseconds parse_duration(std::string_view text);
std::string format_duration(std::chrono::nanoseconds d);  // "1.5s", "250ms"

// "64MiB", "10MB", "512KiB", "1GiB", "100" (bytes). Binary (KiB) and decimal (KB) suffixes.
std::uint64_t parse_size(std::string_view text);
std::string format_size(std::uint64_t bytes);  // "64MiB"

// A rate: "100%" (a share of the traffic; speed for file replay), or "1000/s", "50/m", "10/h"
// (events per unit of time).
struct Rate {
  enum class Unit { percent, per_second } unit = Unit::percent;
  double value = 100.0;  // percent, or events per second
  bool operator==(const Rate&) const = default;
};
Rate parse_rate(std::string_view text);
std::string format_rate(const Rate& rate);

}  // namespace doppel
