#include "doppel/units.hpp"

#include "doppel/options.hpp"  // quote_for_message: a hostile value is quoted by a prefix only

#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace doppel {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// Reads a non-negative decimal number at the front of `s`; advances `s` past it.
bool read_number(std::string_view& s, double& out) {
  std::size_t n = 0;
  while (n < s.size() && ((s[n] >= '0' && s[n] <= '9') || s[n] == '.')) ++n;
  if (n == 0) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + n, out);
  if (ec != std::errc{} || ptr != s.data() + n) return false;
  s.remove_prefix(n);
  return true;
}

std::string trim_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

std::chrono::nanoseconds parse_duration(std::string_view text) {
  std::string_view s = trim(text);
  const std::string hint = "invalid duration " + quote_for_message(text) +
                           ": expected a number with a unit (ns, us, ms, s, m, h), e.g. \"250ms\" or \"1m30s\"";
  if (s.empty()) throw std::invalid_argument(hint);
  long double total = 0;
  while (!s.empty()) {
    double number = 0;
    if (!read_number(s, number)) throw std::invalid_argument(hint);
    std::size_t n = 0;
    while (n < s.size() && ((s[n] >= 'a' && s[n] <= 'z') || (static_cast<unsigned char>(s[n]) >= 0x80))) ++n;
    std::string_view unit = s.substr(0, n);
    s.remove_prefix(n);
    long double scale = 0;
    if (unit == "ns") scale = 1;
    else if (unit == "us" || unit == "\xC2\xB5s") scale = 1e3;  // "µs"
    else if (unit == "ms") scale = 1e6;
    else if (unit == "s") scale = 1e9;
    else if (unit == "m") scale = 60e9;
    else if (unit == "h") scale = 3600e9;
    else throw std::invalid_argument(hint);
    total += number * scale;
  }
  if (total > 9.2e18L) throw std::invalid_argument("duration " + quote_for_message(text) + " is too long");
  return std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(static_cast<double>(total))));
}

std::string format_duration(std::chrono::nanoseconds d) {
  double ns = static_cast<double>(d.count());
  if (ns == 0) return "0s";
  if (ns >= 3600e9 && std::fmod(ns, 3600e9) == 0) return trim_number(ns / 3600e9) + "h";
  if (ns >= 60e9 && std::fmod(ns, 60e9) == 0) return trim_number(ns / 60e9) + "m";
  if (ns >= 1e9) return trim_number(ns / 1e9) + "s";
  if (ns >= 1e6) return trim_number(ns / 1e6) + "ms";
  if (ns >= 1e3) return trim_number(ns / 1e3) + "us";
  return trim_number(ns) + "ns";
}

std::uint64_t parse_size(std::string_view text) {
  std::string_view s = trim(text);
  const std::string hint = "invalid size " + quote_for_message(text) +
                           ": expected bytes with an optional unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. \"64MiB\"";
  double number = 0;
  if (!read_number(s, number)) throw std::invalid_argument(hint);
  s = trim(s);
  long double scale = 0;
  if (s.empty() || s == "B" || s == "b") scale = 1;
  else if (s == "KB" || s == "kB" || s == "k" || s == "K") scale = 1e3;
  else if (s == "MB" || s == "M" || s == "m") scale = 1e6;
  else if (s == "GB" || s == "G" || s == "g") scale = 1e9;
  else if (s == "TB" || s == "T") scale = 1e12;
  else if (s == "KiB" || s == "Ki") scale = 1024.0L;
  else if (s == "MiB" || s == "Mi") scale = 1024.0L * 1024;
  else if (s == "GiB" || s == "Gi") scale = 1024.0L * 1024 * 1024;
  else if (s == "TiB" || s == "Ti") scale = 1024.0L * 1024 * 1024 * 1024;
  else throw std::invalid_argument(hint);
  long double bytes = number * scale;
  if (bytes > 1.8e19L) throw std::invalid_argument("size " + quote_for_message(text) + " is too large");
  return static_cast<std::uint64_t>(bytes + 0.5L);
}

std::string format_size(std::uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4 && std::fmod(v, 1024) == 0) {
    v /= 1024;
    ++u;
  }
  return trim_number(v) + units[u];
}

Rate parse_rate(std::string_view text) {
  std::string_view s = trim(text);
  const std::string hint = "invalid rate " + quote_for_message(text) +
                           ": expected a percentage (\"100%\") or events per unit of time (\"1000/s\", \"50/m\", \"10/h\")";
  double number = 0;
  if (!read_number(s, number)) throw std::invalid_argument(hint);
  s = trim(s);
  Rate r;
  if (s == "%") {
    r.unit = Rate::Unit::percent;
    r.value = number;
  } else if (s == "/s") {
    r.unit = Rate::Unit::per_second;
    r.value = number;
  } else if (s == "/m") {
    r.unit = Rate::Unit::per_second;
    r.value = number / 60;
  } else if (s == "/h") {
    r.unit = Rate::Unit::per_second;
    r.value = number / 3600;
  } else {
    throw std::invalid_argument(hint);
  }
  return r;
}

std::string format_rate(const Rate& rate) {
  if (rate.unit == Rate::Unit::percent) return trim_number(rate.value) + "%";
  return trim_number(rate.value) + "/s";
}

}  // namespace doppel
