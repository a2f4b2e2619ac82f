#include "report_json.hpp"

#include <ctime>
#include <iterator>

namespace doppel::plugins {
namespace {

constexpr double kQuantiles[] = {0.5, 0.9, 0.95, 0.99, 1.0};
constexpr const char* kQuantileNames[] = {"p50", "p90", "p95", "p99", "max"};

void write_percentiles(JsonWriter& w, const Reservoir& r) {
  w.begin_object();
  w.field("count", r.seen());
  for (std::size_t i = 0; i < std::size(kQuantiles); ++i) {
    auto v = r.percentile(kQuantiles[i]);
    if (v) w.field(kQuantileNames[i], *v);
    else w.key(kQuantileNames[i]).null();
  }
  w.end_object();
}

void write_rate(JsonWriter& w, std::string_view name, std::uint64_t n, std::uint64_t total) {
  if (total == 0) w.key(name).null();
  else w.field(name, static_cast<double>(n) / static_cast<double>(total));
}

}  // namespace

void write_totals(JsonWriter& w, const ReportTotals& t) {
  w.begin_object();
  w.field("total", t.total);
  w.field("match", t.match);
  w.field("warn", t.warn);
  w.field("mismatch", t.mismatch);
  w.field("replay_error", t.replay_error);
  w.field("missing_original", t.missing_original);
  w.field("missing_replay", t.missing_replay);
  w.field("other", t.other);
  write_rate(w, "match_rate", t.match, t.total);
  write_rate(w, "mismatch_rate", t.mismatch, t.total);
  w.key("latency").begin_object();
  w.key("original");
  write_percentiles(w, t.original_latency);
  w.key("replay");
  write_percentiles(w, t.replay_latency);
  w.end_object();
  w.end_object();
}

void write_sample(JsonWriter& w, const PathSample& s) {
  w.begin_object();
  w.field("id", s.id);
  w.field("verdict", s.verdict);
  w.field("kind", s.kind);
  w.field("original_value", s.original_value);
  w.field("replay_value", s.replay_value);
  if (!s.message.empty()) w.field("message", s.message);
  w.field("request", s.request);
  w.field("original", s.original);
  w.field("replay", s.replay);
  if (!s.baseline.empty()) w.field("baseline", s.baseline);
  w.end_object();
}

std::string utc_time(std::chrono::system_clock::time_point t) {
  std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return buf;
}

}  // namespace doppel::plugins
