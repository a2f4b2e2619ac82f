#pragma once
// The pieces of JSON the HTML report's data block and the live view's API share, so that a
// verdict count or a sample has one shape wherever a client reads it.
#include <chrono>
#include <string>

#include "doppel/json_writer.hpp"
#include "report_model.hpp"

namespace doppel::plugins {

// {"total", "match", ..., "other", "match_rate", "mismatch_rate",
//  "latency": {"original": {"count", "p50", "p90", "p95", "p99", "max"}, "replay": {...}}}
// Rates are fractions (null with no verdicts); latencies are in ms (null with no data).
void write_totals(JsonWriter& w, const ReportTotals& totals);
// {"id", "verdict", "kind", "original_value", "replay_value", ["message"], "request", "original",
//  "replay", ["baseline"]}
void write_sample(JsonWriter& w, const PathSample& sample);
// "2026-12-03T15:45:00Z"
std::string utc_time(std::chrono::system_clock::time_point t);

}  // namespace doppel::plugins
