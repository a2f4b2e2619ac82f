#include "file_output.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <stdexcept>

namespace doppel::plugins {

void FileOutput::start(StageContext& context) {
  Stage::start(context);
  records_ = &context.counter("records_written");
  bytes_ = &context.counter("bytes_written");
  chunks_ = &context.counter("files_opened");
  std::lock_guard lock(mutex_);
  base_second_ = std::time(nullptr);
  base_ = gor::expand_time_pattern(config_.pattern, base_second_).value_or(config_.pattern);
  // Opened now, not on the first message: a missing directory, a permission problem, an
  // existing file or a planted link stops the run before traffic flows instead of turning
  // every message into a failure.
  try {
    open_chunk(base_, true);
  } catch (const std::exception& e) {
    throw std::runtime_error("output \"" + context.stage_name() + "\": " + e.what());
  }
  periodic_flush_.start(config_.flush_interval, [this] {
    std::lock_guard flush_lock(mutex_);
    if (!writer_) return;
    try {
      writer_->flush(false);
    } catch (const std::exception& e) {
      account();
      report_failure(e);
    }
    account();
    held_.release();  // written, or counted as lost
  });
}

void FileOutput::open_chunk(const std::string& base, bool first_of_base) {
  std::string path = base;
  OutputFilePolicy files = config_.files;
  std::uint64_t index = 0;
  if (config_.chunked()) {
    bool append = files.existing == ExistingFile::append;
    if (first_of_base) {
      // Never overwrite chunks of an earlier run: continue after the highest index (GoReplay
      // does the same). With append, keep filling the last one.
      auto last = gor::last_chunk_index(base);
      index = !last ? 0 : (append ? *last : *last + 1);
    } else {
      index = chunk_index_ + 1;
      append = false;
    }
    // A new chunk never replaces a file, whatever `overwrite` says; one that appeared under the
    // next name since (another writer, a planted link) is stepped over.
    files.existing = append ? ExistingFile::append : ExistingFile::refuse;
    path = gor::chunk_name(base, index);
    struct stat st {};
    for (int tries = 0; !append && tries < 1000 && ::lstat(path.c_str(), &st) == 0; ++tries)
      path = gor::chunk_name(base, ++index);
  }
  writer_ = gor::RecordWriter::open_file(path, files, config_.gzip);
  accounted_ = {};
  chunk_index_ = index;
  chunk_records_ = 0;
  chunks_->add();
  const char* how = files.existing == ExistingFile::append      ? " (appending)"
                    : files.existing == ExistingFile::overwrite ? " (replacing what was there)"
                                                                : "";
  context().log().info("writing {}{}", path, how);
}

void FileOutput::close_current() {
  if (!writer_) return;
  try {
    writer_->close();
  } catch (const std::exception& e) {
    account();
    report_failure(e);
  }
  account();
  writer_.reset();
  held_.release();  // closed: written, or counted as lost
}

void FileOutput::account() {
  if (!writer_) return;
  const OutputFile::Progress& now = writer_->progress();
  std::uint64_t written = now.records_written - accounted_.records_written;
  std::uint64_t lost = now.records_lost - accounted_.records_lost;
  if (written > 0) records_->add(written);
  if (now.bytes_written != accounted_.bytes_written) bytes_->add(now.bytes_written - accounted_.bytes_written);
  if (lost > 0) {
    context().drop("write_failed", lost);
    lost_while_failing_ += lost;
  }
  if (failing_ && written > 0 && lost == 0) {
    context().log().warn("{}: writing again; {} records were lost (dropped.write_failed)", writer_->path(),
                         lost_while_failing_);
    failing_ = false;
    lost_while_failing_ = 0;
  }
  accounted_ = now;
}

void FileOutput::report_failure(const std::exception& e) {
  if (failing_) return;  // once per episode, not once per record
  failing_ = true;
  context().log().error(
      "{}; records that cannot be written are dropped (counted as write_failed) and the file is kept ending "
      "with a complete record; every later write tries again",
      e.what());
}

void FileOutput::rotate_if_needed(std::size_t size) {
  if (gor::has_time_pattern(config_.pattern)) {
    std::time_t now = std::time(nullptr);
    if (now != base_second_) {
      base_second_ = now;
      std::string base = gor::expand_time_pattern(config_.pattern, now).value_or(config_.pattern);
      if (base != base_) {
        close_current();
        base_ = std::move(base);
        open_chunk(base_, true);
        return;
      }
    }
  }
  if (!writer_) {
    open_chunk(base_, !config_.chunked());
    return;
  }
  if (!config_.chunked() || chunk_records_ == 0) return;
  bool full = config_.max_records > 0 && chunk_records_ >= config_.max_records;
  if (config_.size_limit > 0) {
    // Plain chunks never pass the limit (unless one record is larger); gzip ones by what zlib holds.
    std::uint64_t after = writer_->size() + (config_.gzip ? 0 : size);
    full = full || (config_.gzip ? writer_->size() >= config_.size_limit : after > config_.size_limit);
  }
  if (full) {
    close_current();
    open_chunk(base_, false);
  }
}

void FileOutput::process(const MessagePtr& message) {
  // The size matters before writing only to keep plain chunks within size_limit.
  std::size_t upcoming = config_.size_limit > 0 && !config_.gzip ? gor::record_size(*message) : 0;
  std::lock_guard lock(mutex_);
  try {
    rotate_if_needed(upcoming);
  } catch (const std::exception& e) {
    // No file to write to (it could not be opened): this record is lost; the next one tries again.
    context().drop("write_failed");
    ++lost_while_failing_;
    report_failure(e);
    return;
  }
  try {
    writer_->write(*message);
    ++chunk_records_;
    if (held_.hold(*message)) {
      writer_->flush(false);
      held_.release();
    }
  } catch (const std::exception& e) {
    account();
    report_failure(e);
    held_.release();  // what they were held for is counted as lost
  }
  account();
}

void FileOutput::flush() {
  std::lock_guard lock(mutex_);
  if (!writer_) return;
  try {
    writer_->flush(true);
  } catch (const std::exception& e) {
    account();
    report_failure(e);
  }
  account();
  held_.release();
}

void FileOutput::stop() {
  periodic_flush_.stop();
  std::lock_guard lock(mutex_);
  close_current();
}

}  // namespace doppel::plugins
