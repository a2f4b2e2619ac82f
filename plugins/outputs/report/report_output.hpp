#pragma once
// The `report` output: verdicts to a JSONL file, a self-contained HTML report, a console
// summary at exit, `fail_if` goals that make `doppel run` exit non-zero, and the live view
// (the report and its data served over HTTP while the run goes on).
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "doppel/gor_stream.hpp"
#include "doppel/held_leases.hpp"
#include "doppel/http_server.hpp"
#include "doppel/io_threads.hpp"
#include "doppel/listen_address.hpp"
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
  // The live view: where it is served (unset: off), and how often the served page refreshes.
  std::optional<ListenAddress> listen;
  std::chrono::nanoseconds live_refresh{std::chrono::seconds(5)};
};

// The report's data, as JSON (what the HTML page renders).
std::string render_report_data(const ReportModel& model, const ReportConfig& config, const GoalValues& goals);
// The HTML document around `data` (one file: inline CSS, JS and SVG, no network); `live`: with
// the script that refreshes it in place from where it was served, every config.live_refresh.
std::string render_html_page(const ReportConfig& config, std::string_view data, bool live = false);
// Both: the HTML document for `model`.
std::string render_html(const ReportModel& model, const ReportConfig& config, const GoalValues& goals);
// The console table printed at exit.
std::string render_summary(const ReportModel& model, const ReportConfig& config, const GoalValues& goals);

class ReportOutput : public Stage {
 public:
  explicit ReportOutput(ReportConfig config) : config_(std::move(config)), model_(config_.limits) {}
  ~ReportOutput() override;

  void start(StageContext& context) override;
  void process(const MessagePtr& message) override;
  void flush() override;
  void stop() override;

  // Where the live view listens (its port when `listen` asked for port 0); nullopt when off.
  std::optional<boost::asio::ip::tcp::endpoint> live_endpoint() const;

 private:
  // The goals' values; `report`: a missed one is told to the runtime (at the end only: a rate
  // past its bound midway may come back under it).
  GoalValues evaluate_goals(bool report);    // mutex_ held
  void write_outputs();                      // mutex_ held
  void write_html(const GoalValues& goals);  // mutex_ held
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

  // The live view (report_live.cpp). Its handlers run on live_io_'s thread and take mutex_ only
  // to render what they answer from model_.
  void start_live();
  void stop_live();
  HttpServer::Response live_page();
  HttpServer::Response live_summary();
  HttpServer::Response live_paths(std::string_view query);
  HttpServer::Response live_samples(std::string_view query);
  // A rendering kept for the viewers that ask again before the model changes or within a
  // second: what it costs (sorting the latency reservoirs) does not grow with their number.
  struct Rendered {
    std::uint64_t verdicts = 0;
    std::chrono::steady_clock::time_point at{};
    std::string text;  // "" until the first rendering
  };
  const std::string& rendered(Rendered& slot, const std::function<std::string()>& render);  // mutex_ held
  Rendered live_data_, live_summary_;
  std::chrono::system_clock::time_point started_at_{};
  std::optional<std::chrono::system_clock::time_point> last_verdict_at_;
  std::unique_ptr<IoThreads> live_io_;  // declared before live_: destroyed after the server
  std::unique_ptr<HttpServer> live_;
  std::optional<boost::asio::ip::tcp::endpoint> live_endpoint_;
};

}  // namespace doppel::plugins
