#pragma once
// `fail_if` goals: "mismatch_rate > 1%", "p95_latency_ratio >= 1.5", "total < 100".
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace doppel::plugins {

struct ReportTotals;

struct Goal {
  std::string text;    // as written
  std::string metric;  // "mismatch_rate", ...
  std::string op;      // ">", ">=", "<", "<=", "==", "!="
  double threshold = 0;
  bool percent = false;  // written with '%': shown back that way
};

// Each goal with its value now (nullopt: undefined).
using GoalValues = std::vector<std::pair<Goal, std::optional<double>>>;

// Parses one condition; the error says what is accepted. nullopt with `error` set on failure.
std::optional<Goal> parse_goal(std::string_view text, std::string& error);
// The metric's value; nullopt when it is undefined (a rate or ratio with no verdicts).
std::optional<double> goal_metric(const Goal& goal, const ReportTotals& totals);
bool goal_holds(const Goal& goal, double value);  // true: the condition is met (the goal missed)
std::string format_metric(const Goal& goal, double value);

// The metrics a condition may name.
inline constexpr std::string_view kGoalMetrics =
    "mismatch_rate, warn_rate, match_rate, error_rate, replay_error_rate, missing_rate, "
    "mismatches, warns, errors, total, p50_latency_ratio, p95_latency_ratio, p99_latency_ratio";

}  // namespace doppel::plugins
