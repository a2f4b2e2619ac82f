#pragma once
// The `report` output: verdicts to a JSONL file, a self-contained HTML report, a console
// summary at exit, and `fail_if` goals that make `doppel run` exit non-zero.
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
  std::vector<std::pair<Goal, std::optional<double>>> evaluate_goals();  // mutex_ held
  void write_outputs();                                                  // mutex_ held
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
  std::vector<bool> goal_reported_;
  bool dirty_ = true;
  bool stopped_ = false;
};

}  // namespace doppel::plugins
