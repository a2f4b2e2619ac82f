#pragma once
// The `report` output: verdicts to a JSONL file, a self-contained HTML report, a console
// summary at exit, and `fail_if` goals that make `doppel run` exit non-zero.
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "doppel/gor_stream.hpp"
#include "doppel/held_leases.hpp"
#include "doppel/output_file.hpp"
#include "doppel/stage.hpp"
#include "goal.hpp"
#include "report_model.hpp"

namespace doppel::plugins {

struct ReportConfig {
  std::string jsonl;       // "" : none
  std::string html;        // "" : none
  // Days-long runs: the HTML report is rewritten this often while verdicts come (so a run that
  // is killed still leaves one); 0: at the end only.
  std::chrono::nanoseconds html_interval{std::chrono::seconds(60)};
  // The JSONL file is rotated (FILE -> FILE.1 -> ... -> FILE.<jsonl_keep>, the oldest removed)
  // when a line would take it past jsonl_max_size, or when it is jsonl_rotate_interval old;
  // 0: never.
  std::uint64_t jsonl_max_size = 0;
  std::chrono::nanoseconds jsonl_rotate_interval{0};
  std::size_t jsonl_keep = 10;
  OutputFilePolicy files;  // an existing JSONL file (refused, appended to, overwritten), the mode
  bool summary = true;
  std::string title = "doppel report";
  std::vector<Goal> fail_if;
  std::size_t top_paths = 50;
  ReportLimits limits;
};

// The HTML document for `model` (one file: inline CSS, JS and SVG, no network).
std::string render_html(const ReportModel& model, const ReportConfig& config,
                        const std::vector<std::pair<Goal, std::optional<double>>>& goals);
// The console table printed at exit.
std::string render_summary(const ReportModel& model, const ReportConfig& config,
                           const std::vector<std::pair<Goal, std::optional<double>>>& goals);

class ReportOutput : public Stage {
 public:
  explicit ReportOutput(ReportConfig config) : config_(std::move(config)), model_(config_.limits) {}
  ~ReportOutput() override;

  void start(StageContext& context) override;
  void process(const MessagePtr& message) override;
  void flush() override;
  void stop() override;

 private:
  // The goals' values; `report`: a missed one is told to the runtime (at the end only: a rate
  // past its bound midway may come back under it).
  std::vector<std::pair<Goal, std::optional<double>>> evaluate_goals(bool report);  // mutex_ held
  void write_outputs();                                                              // mutex_ held
  void write_html(const std::vector<std::pair<Goal, std::optional<double>>>& goals);  // mutex_ held
  // Rotates the JSONL file before a line of `line_size` bytes when it is due; mutex_ held.
  void rotate_jsonl_if_due(std::size_t line_size);
  void open_jsonl();
  // The JSONL file's calls, with failures counted (dropped.write_failed) and logged once per
  // episode; mutex_ held.
  void flush_jsonl();
  void close_jsonl();
  void account_jsonl();
  void jsonl_failed(const std::exception& e);
  ReportConfig config_;
  std::mutex mutex_;
  ReportModel model_;
  std::unique_ptr<OutputFile> jsonl_;
  OutputFile::Progress jsonl_accounted_;
  bool jsonl_failing_ = false;  // since the last failure, no line was written
  Counter* jsonl_written_ = nullptr;
  HeldLeases held_;                    // of verdicts written to jsonl_ since its last flush
  gor::PeriodicFlush periodic_flush_;  // flushes jsonl_ when verdicts pause
  gor::PeriodicFlush periodic_html_;   // rewrites the HTML report every html_interval
  std::chrono::steady_clock::time_point jsonl_opened_;
  Counter* jsonl_rotated_ = nullptr;
  std::vector<bool> goal_reported_;
  bool dirty_ = true;
  bool stopped_ = false;
};

}  // namespace doppel::plugins
