#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "doppel/gor_stream.hpp"
#include "doppel/stage.hpp"
#include "file_set_reader.hpp"
#include "replay_schedule.hpp"

namespace doppel::plugins {

struct FileInputConfig {
  std::string pattern;  // a glob, as GoReplay's --input-file
  ReplayTiming timing;
  bool loop = false;
  FileOrder order = FileOrder::timestamp;
  KindSet kinds = KindSet::http();
  std::size_t max_payload_size = gor::kDefaultMaxPayloadSize;  // `max_record_size`
};

// Reads .gor files (plain or gzip) matching a glob, in chunk order, and emits their records
// paced by the recorded request timestamps, like GoReplay's --input-file.
class FileInput : public Stage {
 public:
  explicit FileInput(FileInputConfig config) : config_(std::move(config)) {}

  void start(StageContext& context) override;
  void run(std::stop_token stop) override;
  std::optional<KindSet> produces() const override { return config_.kinds; }
  OverflowPolicy overflow_policy() const override { return OverflowPolicy::block; }
  bool dry_run(std::ostream& out) override;

 private:
  enum class Outcome { finished, stopped };
  // One pass over every matching file; counts what it emitted into `emitted`. Throws
  // std::runtime_error on an I/O error, or when not one of the files could be read.
  Outcome read_files(std::stop_token& stop, ReplaySchedule& schedule, std::chrono::steady_clock::time_point& due,
                     std::uint64_t& emitted);
  // Sleeps until `until`; false when stopped first.
  bool wait_until(std::chrono::steady_clock::time_point until, std::stop_token& stop);
  bool stopping(const std::stop_token& stop) const { return stop.stop_requested() || context().stopping(); }
  // A record skipped (corrupt, too large): counted under `reason`, the first ones logged.
  void skip_record(const FileSetReader::Event& event, std::string_view reason);

  FileInputConfig config_;
  Gauge* lag_ms_ = nullptr;
  Counter* out_of_order_ = nullptr;
  Counter* read_errors_ = nullptr;
  Counter* files_read_ = nullptr;
  Gauge* progress_read_ = nullptr;
  Gauge* progress_total_ = nullptr;
  std::uint64_t skipped_logged_ = 0;
  std::mutex wait_mutex_;
  std::condition_variable_any wakeup_;
};

}  // namespace doppel::plugins
