#include "report_output.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <stdexcept>

namespace doppel::plugins {

ReportOutput::~ReportOutput() {
  stop_live();
  periodic_flush_.stop();
  periodic_html_.stop();
}

void ReportOutput::start(StageContext& context) {
  Stage::start(context);
  started_at_ = std::chrono::system_clock::now();
  // First: a live view that cannot listen fails the run before any file is written.
  if (config_.listen) start_live();
  goal_reported_.assign(config_.fail_if.size(), false);
  jsonl_written_ = &context.counter("jsonl_written");
  jsonl_rotated_ = &context.counter("jsonl_rotated");
  if (!config_.jsonl.empty()) {
    try {
      open_jsonl();
    } catch (const std::exception& e) {
      stop_live();  // a stage that fails to start is not stopped: nothing of it may keep running
      throw std::runtime_error("output \"" + context.stage_name() + "\": " + e.what());
    }
    // Verdicts reach the file within this interval (for whoever follows it with tail -f); then
    // the messages they came from may be acknowledged to their source (held_).
    periodic_flush_.start(std::chrono::milliseconds(200), [this] {
      std::lock_guard lock(mutex_);
      if (jsonl_) flush_jsonl();
    });
  }
  if (!config_.html.empty())
    periodic_html_.start(config_.html_interval, [this] {
      std::lock_guard lock(mutex_);
      if (dirty_ && !stopped_) write_html(evaluate_goals(false));
    });
}

void ReportOutput::open_jsonl() {
  jsonl_ = OutputFile::open(config_.jsonl, config_.files, false);
  jsonl_accounted_ = OutputFile::Progress{};
  jsonl_opened_ = std::chrono::steady_clock::now();
}

void ReportOutput::rotate_jsonl_if_due(std::size_t line_size) {
  std::uint64_t size = jsonl_->size();
  bool too_large = config_.jsonl_max_size > 0 && size > 0 && size + line_size > config_.jsonl_max_size;
  bool too_old = config_.jsonl_rotate_interval.count() > 0 && size > 0 &&
                 std::chrono::steady_clock::now() - jsonl_opened_ >= config_.jsonl_rotate_interval;
  if (!too_large && !too_old) return;
  close_jsonl();  // flushed and closed: the file ends with its last whole line
  jsonl_.reset();
  // FILE.<keep> is the oldest kept: it goes, the others move up one, FILE becomes FILE.1.
  namespace fs = std::filesystem;
  std::error_code ignored;
  auto numbered = [&](std::size_t n) { return config_.jsonl + "." + std::to_string(n); };
  fs::remove(numbered(config_.jsonl_keep), ignored);
  for (std::size_t n = config_.jsonl_keep; n > 1; --n)
    if (fs::exists(numbered(n - 1), ignored)) fs::rename(numbered(n - 1), numbered(n), ignored);
  std::error_code renamed;
  fs::rename(config_.jsonl, numbered(1), renamed);
  if (renamed) {
    // Written on where it was: nothing is lost, the file only grows further.
    context().log().error("report: cannot rotate {}: {}; writing on to it", config_.jsonl, renamed.message());
    OutputFilePolicy append = config_.files;
    append.existing = ExistingFile::append;
    jsonl_ = OutputFile::open(config_.jsonl, append, false);
    jsonl_accounted_ = OutputFile::Progress{};
    jsonl_opened_ = std::chrono::steady_clock::now();
    return;
  }
  jsonl_rotated_->add(1);
  open_jsonl();
}

void ReportOutput::flush_jsonl() {
  try {
    jsonl_->flush(false);
  } catch (const std::exception& e) {
    jsonl_failed(e);
  }
  account_jsonl();
  held_.release();  // written, or counted as lost
}

void ReportOutput::close_jsonl() {
  try {
    jsonl_->close();
  } catch (const std::exception& e) {
    jsonl_failed(e);
  }
  account_jsonl();
  held_.release();
}

void ReportOutput::account_jsonl() {
  const OutputFile::Progress& now = jsonl_->progress();
  std::uint64_t written = now.records_written - jsonl_accounted_.records_written;
  std::uint64_t lost = now.records_lost - jsonl_accounted_.records_lost;
  if (written > 0) jsonl_written_->add(written);
  // The verdicts still count in the HTML report and the summary; their lines are what was lost.
  if (lost > 0) context().drop("write_failed", lost);
  if (jsonl_failing_ && written > 0 && lost == 0) {
    context().log().warn("report: writing {} again", config_.jsonl);
    jsonl_failing_ = false;
  }
  jsonl_accounted_ = now;
}

void ReportOutput::jsonl_failed(const std::exception& e) {
  if (jsonl_failing_) return;  // once per episode, not once per line
  jsonl_failing_ = true;
  context().log().error(
      "report: {}; verdict lines that cannot be written are dropped (counted as write_failed), the file "
      "keeps ending with a complete line, and every later write tries again",
      e.what());
}

void ReportOutput::process(const MessagePtr& message) {
  if (message->kind != Kind::verdict) {
    context().drop("not_a_verdict");
    return;
  }
  std::lock_guard lock(mutex_);
  std::string error;
  if (!model_.add(message->payload, error)) {
    context().fail("invalid_verdict");
    context().log().warn("report: {} (id {})", error, message->id);
    return;
  }
  dirty_ = true;
  last_verdict_at_ = std::chrono::system_clock::now();
  if (!config_.jsonl.empty() && !stopped_) {
    // One verdict per line: the payload is single-line JSON written by the compare stage.
    try {
      if (!jsonl_) open_jsonl();  // a rotation could not open the new file: tried again
      else if (config_.jsonl_max_size > 0 || config_.jsonl_rotate_interval.count() > 0)
        rotate_jsonl_if_due(message->payload.size() + 1);
      jsonl_->add({message->payload, "\n"});
      if (held_.hold(*message)) flush_jsonl();
    } catch (const std::exception& e) {
      jsonl_failed(e);
      if (!jsonl_) context().drop("write_failed");  // no file to write this line to
      held_.release();  // what they were held for is counted as lost
    }
    if (jsonl_) account_jsonl();
  }
}

GoalValues ReportOutput::evaluate_goals(bool report) {
  GoalValues out;
  for (std::size_t i = 0; i < config_.fail_if.size(); ++i) {
    const Goal& g = config_.fail_if[i];
    auto value = goal_metric(g, model_.totals());
    out.emplace_back(g, value);
    if (report && value && goal_holds(g, *value) && !goal_reported_[i]) {
      goal_reported_[i] = true;
      context().goal_missed("report: fail_if \"" + g.text + "\" (" + g.metric + " = " + format_metric(g, *value) + ")");
    }
  }
  return out;
}

void ReportOutput::write_outputs() {
  auto goals = evaluate_goals(true);
  if (jsonl_) flush_jsonl();
  held_.release();
  if (!dirty_) return;
  write_html(goals);
}

void ReportOutput::write_html(const GoalValues& goals) {
  if (!config_.html.empty()) {
    try {
      // A new file renamed over the old: a reader never sees half a report, and a link planted
      // at the name is replaced, never written through.
      replace_file(config_.html, render_html(model_, config_, goals), config_.files.mode);
    } catch (const std::exception& e) {
      context().fail("html_unwritable");
      context().log().error("report: {}", e.what());
    }
  }
  dirty_ = false;
}

void ReportOutput::flush() {
  std::lock_guard lock(mutex_);
  write_outputs();
}

void ReportOutput::stop() {
  stop_live();  // before mutex_ is taken: a viewer's request may be waiting for it
  periodic_flush_.stop();
  periodic_html_.stop();
  std::lock_guard lock(mutex_);
  if (stopped_) return;
  stopped_ = true;
  write_outputs();
  if (jsonl_) {
    close_jsonl();
    jsonl_.reset();
  }
  if (config_.summary) {
    std::string table = render_summary(model_, config_, evaluate_goals(false));
    std::fwrite(table.data(), 1, table.size(), stderr);
    std::fflush(stderr);
  }
}

}  // namespace doppel::plugins
