#pragma once
#include <chrono>
#include <cstdint>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>

#include "doppel/gor_stream.hpp"
#include "doppel/held_leases.hpp"
#include "doppel/output_file.hpp"
#include "doppel/stage.hpp"

namespace doppel::plugins {

struct FileOutputConfig {
  std::string pattern;            // path, possibly with %Y%m%d%H%M%S
  bool gzip = false;              // the path ends in .gz
  OutputFilePolicy files;         // existing files (refused, appended to, overwritten) and the mode
  std::uint64_t size_limit = 0;   // bytes per chunk; 0 = no limit
  std::uint64_t max_records = 0;  // records per chunk; 0 = no limit
  std::chrono::nanoseconds flush_interval{std::chrono::seconds(1)};
  bool chunked() const { return size_limit > 0 || max_records > 0; }
};

// Writes every message as a .gor record, byte for byte what the file input reads back, into
// one file or a series of chunks (name_0.gor, name_1.gor, ...), like GoReplay's --output-file.
// records_written counts what reached the file; a record a failed write (disk full) could not
// keep is dropped as `write_failed`, and the next write tries again (doppel/output_file.hpp).
class FileOutput : public Stage {
 public:
  explicit FileOutput(FileOutputConfig config) : config_(std::move(config)) {}

  void start(StageContext& context) override;
  void process(const MessagePtr& message) override;
  void flush() override;
  void stop() override;

 private:
  // Makes sure the current chunk can take a record of `size` bytes; opens the next if not.
  void rotate_if_needed(std::size_t size);
  void open_chunk(const std::string& base, bool first_of_base);
  void close_current();
  // Moves what the writer wrote or lost since the last call into the counters.
  void account();
  // Logs a failure once per episode (until a write succeeds again).
  void report_failure(const std::exception& e);

  FileOutputConfig config_;
  std::mutex mutex_;  // process() and the periodic flush
  std::unique_ptr<gor::RecordWriter> writer_;
  std::string base_;             // the pattern expanded for the current time
  std::time_t base_second_ = 0;  // when base_ was last expanded
  std::uint64_t chunk_index_ = 0;
  std::uint64_t chunk_records_ = 0;
  OutputFile::Progress accounted_;  // the current writer's progress already counted
  bool failing_ = false;            // since the last failure, nothing was written
  std::uint64_t lost_while_failing_ = 0;
  Counter* records_ = nullptr;
  Counter* bytes_ = nullptr;
  Counter* chunks_ = nullptr;
  gor::PeriodicFlush periodic_flush_;
  HeldLeases held_;  // of records written since the last flush (see doppel/held_leases.hpp)
};

}  // namespace doppel::plugins
