#include "goal.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "report_model.hpp"

namespace doppel::plugins {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool is_rate(std::string_view metric) { return metric.ends_with("_rate"); }

}  // namespace

std::optional<Goal> parse_goal(std::string_view text, std::string& error) {
  Goal g;
  g.text = std::string(trim(text));
  std::string_view s = g.text;
  std::size_t op_at = s.find_first_of("<>=!");
  if (op_at == std::string_view::npos) {
    error = "condition \"" + g.text + "\" needs a comparison: METRIC > VALUE (>, >=, <, <=, ==, !=)";
    return std::nullopt;
  }
  g.metric = std::string(trim(s.substr(0, op_at)));
  std::size_t op_len = (op_at + 1 < s.size() && s[op_at + 1] == '=') ? 2 : 1;
  g.op = std::string(s.substr(op_at, op_len));
  if (g.op == "=" || g.op == "!") {
    error = "condition \"" + g.text + "\": unknown operator \"" + g.op + "\" (use >, >=, <, <=, ==, !=)";
    return std::nullopt;
  }
  std::string known(kGoalMetrics);
  bool metric_ok = false;
  for (std::size_t pos = 0; pos <= known.size();) {
    std::size_t end = known.find(", ", pos);
    if (end == std::string::npos) end = known.size();
    if (known.compare(pos, end - pos, g.metric) == 0 && end - pos == g.metric.size()) metric_ok = true;
    pos = end + 2;
  }
  if (!metric_ok) {
    error = "condition \"" + g.text + "\": unknown metric \"" + g.metric + "\" (known: " + known + ")";
    return std::nullopt;
  }
  std::string_view value = trim(s.substr(op_at + op_len));
  if (value.ends_with('%')) {
    g.percent = true;
    value = trim(value.substr(0, value.size() - 1));
    if (!is_rate(g.metric)) {
      error = "condition \"" + g.text + "\": only rates take a percentage";
      return std::nullopt;
    }
  }
  double v = 0;
  auto r = std::from_chars(value.data(), value.data() + value.size(), v);
  if (r.ec != std::errc() || r.ptr != value.data() + value.size() || value.empty()) {
    error = "condition \"" + g.text + "\": \"" + std::string(value) + "\" is not a number";
    return std::nullopt;
  }
  g.threshold = g.percent ? v / 100.0 : v;
  return g;
}

std::optional<double> goal_metric(const Goal& g, const ReportTotals& t) {
  auto rate = [&](std::uint64_t n) -> std::optional<double> {
    if (t.total == 0) return std::nullopt;
    return static_cast<double>(n) / static_cast<double>(t.total);
  };
  std::uint64_t errors = t.replay_error + t.missing_original + t.missing_replay;
  if (g.metric == "mismatch_rate") return rate(t.mismatch);
  if (g.metric == "warn_rate") return rate(t.warn);
  if (g.metric == "match_rate") return rate(t.match);
  if (g.metric == "error_rate") return rate(errors);
  if (g.metric == "replay_error_rate") return rate(t.replay_error);
  if (g.metric == "missing_rate") return rate(t.missing_original + t.missing_replay);
  if (g.metric == "mismatches") return static_cast<double>(t.mismatch);
  if (g.metric == "warns") return static_cast<double>(t.warn);
  if (g.metric == "errors") return static_cast<double>(errors);
  if (g.metric == "total") return static_cast<double>(t.total);
  auto ratio = [&](double q) -> std::optional<double> {
    auto o = t.original_latency.percentile(q), r = t.replay_latency.percentile(q);
    if (!o || !r || *o <= 0) return std::nullopt;
    return *r / *o;
  };
  if (g.metric == "p50_latency_ratio") return ratio(0.50);
  if (g.metric == "p95_latency_ratio") return ratio(0.95);
  if (g.metric == "p99_latency_ratio") return ratio(0.99);
  return std::nullopt;
}

bool goal_holds(const Goal& g, double v) {
  if (g.op == ">") return v > g.threshold;
  if (g.op == ">=") return v >= g.threshold;
  if (g.op == "<") return v < g.threshold;
  if (g.op == "<=") return v <= g.threshold;
  if (g.op == "==") return v == g.threshold;
  if (g.op == "!=") return v != g.threshold;
  return false;
}

std::string format_metric(const Goal& g, double v) {
  char buf[64];
  if (is_rate(g.metric)) std::snprintf(buf, sizeof buf, "%.3g%%", v * 100.0);
  else if (g.metric.ends_with("_ratio")) std::snprintf(buf, sizeof buf, "%.3g", v);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

}  // namespace doppel::plugins
