// Plugin `stdout` (output): every message as a .gor record on standard output, the framing the
// file output writes, so `doppel run x.toml | ...` feeds tools that read .gor streams.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <mutex>

#include "doppel/gor_stream.hpp"
#include "doppel/plugin.hpp"

namespace doppel::plugins {
namespace {

class StdoutOutput : public Stage {
 public:
  StdoutOutput(int fd, std::chrono::nanoseconds flush_interval) : fd_(fd), flush_interval_(flush_interval) {}

  void start(StageContext& context) override {
    Stage::start(context);
    writer_ = gor::RecordWriter::on_descriptor(fd_);
    periodic_flush_.start(flush_interval_, [this] {
      std::lock_guard lock(mutex_);
      push(false);
    });
  }

  void process(const MessagePtr& message) override {
    std::lock_guard lock(mutex_);
    try {
      writer_->write(*message);
    } catch (const std::exception& e) {
      report_failure(e);
    }
    account();
  }

  void flush() override {
    std::lock_guard lock(mutex_);
    push(true);
  }

  void stop() override {
    periodic_flush_.stop();
    std::lock_guard lock(mutex_);
    push(true);
    writer_.reset();
  }

 private:
  void push(bool sync) {
    if (!writer_) return;
    try {
      writer_->flush(sync);
    } catch (const std::exception& e) {
      report_failure(e);
    }
    account();
  }

  // A closed pipe (the reader went away) or a full disk: the writer counts every record whose
  // bytes did not all reach the descriptor, batched ones included; each is a drop here.
  void account() {
    std::uint64_t lost = writer_->progress().records_lost;
    if (lost > lost_accounted_) context().drop("write_failed", lost - lost_accounted_);
    lost_accounted_ = lost;
  }

  void report_failure(const std::exception& e) {
    if (!error_logged_) context().log().error("writing to standard output failed: {}", e.what());
    error_logged_ = true;
  }

  int fd_;
  std::chrono::nanoseconds flush_interval_;
  std::mutex mutex_;
  std::unique_ptr<gor::RecordWriter> writer_;
  bool error_logged_ = false;
  std::uint64_t lost_accounted_ = 0;
  gor::PeriodicFlush periodic_flush_;
};

PluginDefinition stdout_output_definition() {
  PluginDefinition def;
  def.name = "stdout";
  def.role = Role::output;
  def.description = "Writes messages to standard output as .gor records (GoReplay: --output-stdout)";
  def.accepts = KindSet::http();
  def.options = {
      option("flush_interval", OptionType::duration,
             "Longest time a record waits in the output buffer before it is written out; \"0s\" writes "
             "only when the buffer is full and at the end")
          .default_value("100ms"),
  };
  def.metrics = {
      {"dropped.write_failed", "messages that could not be written (e.g. the reading end of a pipe closed)"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    auto interval = options.duration("flush_interval");
    if (interval < std::chrono::nanoseconds::zero())
      options.fail("flush_interval", "flush_interval must not be negative");
    return std::make_unique<StdoutOutput>(STDOUT_FILENO, interval);
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::stdout_output_definition);
