#include "report_output.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <spdlog/spdlog.h>
#include <stdexcept>

namespace doppel::plugins {
namespace {

// Writes next to the target and renames, so a reader never sees half a report.
void write_file_atomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace

ReportOutput::~ReportOutput() {
  periodic_flush_.stop();
  if (jsonl_) std::fclose(jsonl_);
}

void ReportOutput::start(StageContext& context) {
  Stage::start(context);
  goal_reported_.assign(config_.fail_if.size(), false);
  if (!config_.jsonl.empty()) {
    jsonl_ = std::fopen(config_.jsonl.c_str(), "wb");
    if (!jsonl_) throw std::runtime_error("report: cannot open jsonl file " + config_.jsonl + ": " + std::strerror(errno));
    // Verdicts reach the file within this interval; then the messages they came from may be
    // acknowledged to their source (held_).
    periodic_flush_.start(std::chrono::milliseconds(200), [this] {
      std::lock_guard lock(mutex_);
      if (!jsonl_ || held_.size() == 0) return;
      std::fflush(jsonl_);
      held_.release();
    });
  }
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
  if (jsonl_) {
    // One verdict per line: the payload is single-line JSON written by the compare stage.
    std::fwrite(message->payload.data(), 1, message->payload.size(), jsonl_);
    std::fputc('\n', jsonl_);
    if (held_.hold(*message)) {
      std::fflush(jsonl_);
      held_.release();
    }
  }
}

std::vector<std::pair<Goal, std::optional<double>>> ReportOutput::evaluate_goals() {
  std::vector<std::pair<Goal, std::optional<double>>> out;
  for (std::size_t i = 0; i < config_.fail_if.size(); ++i) {
    const Goal& g = config_.fail_if[i];
    auto value = goal_metric(g, model_.totals());
    out.emplace_back(g, value);
    if (value && goal_holds(g, *value) && !goal_reported_[i]) {
      goal_reported_[i] = true;
      context().goal_missed("report: fail_if \"" + g.text + "\" (" + g.metric + " = " + format_metric(g, *value) + ")");
    }
  }
  return out;
}

void ReportOutput::write_outputs() {
  auto goals = evaluate_goals();
  if (jsonl_) std::fflush(jsonl_);
  held_.release();
  if (!dirty_) return;
  if (!config_.html.empty()) {
    try {
      write_file_atomically(config_.html, render_html(model_, config_, goals));
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
  periodic_flush_.stop();
  std::lock_guard lock(mutex_);
  if (stopped_) return;
  stopped_ = true;
  write_outputs();
  if (jsonl_) {
    std::fclose(jsonl_);
    jsonl_ = nullptr;
  }
  if (config_.summary) {
    std::string table = render_summary(model_, config_, evaluate_goals());
    std::fwrite(table.data(), 1, table.size(), stderr);
    std::fflush(stderr);
  }
}

}  // namespace doppel::plugins
