#include "progress_line.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <iterator>

namespace doppel::core {
namespace {

std::string count_text(double n) {
  char buf[32];
  if (n >= 10'000'000) std::snprintf(buf, sizeof buf, "%.1fM", n / 1e6);
  else if (n >= 10'000) std::snprintf(buf, sizeof buf, "%.1fk", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

}  // namespace

std::string format_bytes(std::uint64_t bytes) {
  static const char* const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  char buf[32];
  if (bytes < 1024) {
    std::snprintf(buf, sizeof buf, "%" PRIu64 " B", bytes);
    return buf;
  }
  double value = static_cast<double>(bytes) / 1024;
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  std::snprintf(buf, sizeof buf, "%.1f %s", value, units[unit]);
  return buf;
}

std::string format_eta(std::chrono::seconds left) {
  long long s = left.count() < 0 ? 0 : left.count();
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm%02llds", s / 3600, s / 60 % 60, s % 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%llds", s);
  return buf;
}

std::string ProgressLine::render(const InputProgress& p, Clock::time_point now) const {
  double seconds = std::chrono::duration<double>(now - start_).count();
  std::string line = "progress: " + count_text(static_cast<double>(p.records)) + " records  " +
                     format_bytes(p.bytes_read);
  bool total_known = p.bytes_total > 0;
  if (total_known) {
    char pct[32];
    double fraction = std::min(1.0, static_cast<double>(p.bytes_read) / static_cast<double>(p.bytes_total));
    std::snprintf(pct, sizeof pct, " (%.1f%%)", fraction * 100);
    line += " of " + format_bytes(p.bytes_total) + pct;
  }
  if (seconds > 0) {
    line += "  " + count_text(static_cast<double>(p.records) / seconds) + " records/s  " +
            format_bytes(static_cast<std::uint64_t>(static_cast<double>(p.bytes_read) / seconds)) + "/s";
  }
  if (p.finished) {
    line += "  done";
  } else if (total_known && seconds >= 1) {
    if (p.bytes_read > 0 && p.bytes_read < p.bytes_total) {
      double rate = static_cast<double>(p.bytes_read) / seconds;
      auto left = std::chrono::seconds(
          static_cast<long long>(static_cast<double>(p.bytes_total - p.bytes_read) / rate + 0.5));
      line += "  ETA " + format_eta(left);
    }
  }
  return line;
}

}  // namespace doppel::core
