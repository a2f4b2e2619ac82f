#include "file_output.hpp"

#include <spdlog/spdlog.h>

namespace doppel::plugins {
namespace {
constexpr std::uint64_t kWriteErrorLogLimit = 10;
}

void FileOutput::start(StageContext& context) {
  Stage::start(context);
  records_ = &context.counter("records_written");
  bytes_ = &context.counter("bytes_written");
  chunks_ = &context.counter("files_opened");
  std::lock_guard lock(mutex_);
  base_second_ = std::time(nullptr);
  base_ = gor::expand_time_pattern(config_.pattern, base_second_).value_or(config_.pattern);
  // Opened now, not on the first message: a missing directory or a permission problem stops
  // the run before traffic flows instead of turning every message into a failure.
  open_chunk(base_, true);
  periodic_flush_.start(config_.flush_interval, [this] {
    std::lock_guard flush_lock(mutex_);
    if (!writer_) return;
    try {
      writer_->flush(false);
      held_.release();
    } catch (const std::exception& e) {
      this->context().log().error("periodic flush of {} failed: {}", writer_->path(), e.what());
    }
  });
}

void FileOutput::open_chunk(const std::string& base, bool first_of_base) {
  std::string path = base;
  bool append = config_.append;
  std::uint64_t index = 0;
  if (config_.chunked()) {
    if (first_of_base) {
      // Never overwrite chunks of an earlier run: continue after the highest index (GoReplay
      // does the same). With append, keep filling the last one.
      auto last = gor::last_chunk_index(base);
      index = !last ? 0 : (append ? *last : *last + 1);
    } else {
      index = chunk_index_ + 1;
      append = false;
    }
    path = gor::chunk_name(base, index);
  }
  writer_ = gor::RecordWriter::open_file(path, append, config_.gzip);
  chunk_index_ = index;
  chunk_records_ = 0;
  chunks_->add();
  context().log().info("writing {}{}", path, append ? " (appending)" : "");
}

void FileOutput::close_current() {
  if (!writer_) return;
  try {
    writer_->close();
  } catch (const std::exception& e) {
    context().log().error("closing {} failed: {}", writer_->path(), e.what());
  }
  writer_.reset();
  held_.release();  // closed: written, or counted as a write error
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

void FileOutput::write_failed(const std::exception& e) {
  context().fail("write_error");
  if (write_errors_logged_++ < kWriteErrorLogLimit)
    context().log().error("{}: {}", writer_ ? writer_->path() : base_, e.what());
}

void FileOutput::process(const MessagePtr& message) {
  // The size matters before writing only to keep plain chunks within size_limit.
  std::size_t upcoming = config_.size_limit > 0 && !config_.gzip ? gor::record_size(*message) : 0;
  std::size_t size = 0;
  std::lock_guard lock(mutex_);
  try {
    rotate_if_needed(upcoming);
    size = writer_->write(*message);
    if (held_.hold(*message)) {
      writer_->flush(false);
      held_.release();
    }
  } catch (const std::exception& e) {
    write_failed(e);
    return;
  }
  ++chunk_records_;
  records_->add();
  bytes_->add(size);
}

void FileOutput::flush() {
  std::lock_guard lock(mutex_);
  if (!writer_) return;
  try {
    writer_->flush(true);
    held_.release();
  } catch (const std::exception& e) {
    context().log().error("flushing {} failed: {}", writer_->path(), e.what());
  }
}

void FileOutput::stop() {
  periodic_flush_.stop();
  std::lock_guard lock(mutex_);
  close_current();
}

}  // namespace doppel::plugins
