#pragma once
// Reading and writing .gor files as streams of records: plain or gzip (zlib), buffered, with
// byte offsets for error messages. Also the file-name helpers GoReplay users know: input globs
// read in chunk order, `%Y%m%d%H%M%S` name patterns, and `name_N.gor` chunk names. Shared by
// the file input, the file and stdout outputs, and anything else that speaks .gor files.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "doppel/gor.hpp"
#include "doppel/message.hpp"

namespace doppel::gor {

// Reads one .gor file (gzip or plain, told apart by the gzip magic bytes, whatever the name)
// and splits it into records at the separator. Records are views into an internal buffer,
// valid until the next call to next().
class RecordReader {
 public:
  enum class Status {
    record,     // `bytes` is one record (header line + payload, no separator)
    end,        // clean end of file (nothing after the last separator)
    truncated,  // the file ended inside a record (no closing separator): `bytes` is what was there
    error,      // a read or decompression error; error() says which. `bytes` holds what was read
  };
  struct Record {
    std::string_view bytes;
    std::uint64_t offset = 0;  // of the record's first byte in the (uncompressed) stream
  };

  // Throws std::system_error when the file cannot be opened.
  explicit RecordReader(const std::string& path, std::size_t buffer_size = 1 << 20);
  ~RecordReader();
  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;

  Status next(Record& out);
  const std::string& path() const { return path_; }
  bool compressed() const;
  const std::string& error() const { return error_; }
  // Bytes consumed so far (uncompressed).
  std::uint64_t position() const { return consumed_; }

 private:
  class Source;
  bool fill();  // reads more; false at end of input or on error (error_ set)

  std::string path_;
  std::unique_ptr<Source> source_;
  std::vector<char> buffer_;
  std::size_t begin_ = 0, end_ = 0, scanned_ = 0;
  std::uint64_t consumed_ = 0;  // stream offset of buffer_[begin_]
  bool eof_ = false;
  std::string error_;
};

// A buffered byte sink on a file or a file descriptor, plain or gzip. Throws std::system_error
// (or std::runtime_error for zlib) on failure; a failed writer stays failed.
class RecordWriter {
 public:
  // Opens `path` (created with mode 0644; truncated unless `append`). A gzip writer in append
  // mode adds a new gzip member, which every gzip reader (and ours) reads as one stream.
  static std::unique_ptr<RecordWriter> open_file(const std::string& path, bool append, bool gzip,
                                                 std::size_t buffer_size = 256 << 10);
  // Writes to `fd` (not owned, never closed), e.g. stdout.
  static std::unique_ptr<RecordWriter> on_descriptor(int fd, std::size_t buffer_size = 64 << 10);
  virtual ~RecordWriter() = default;

  // Header + payload + separator: the record as GoReplay writes it. Returns its size
  // (uncompressed), what record_size(message) says.
  virtual std::size_t write(const Message& message) = 0;
  // Pushes buffered bytes to the OS; with `sync`, to the disk too (fdatasync).
  virtual void flush(bool sync) = 0;
  // Flushes, finishes the gzip stream, closes the file. Idempotent.
  virtual void close() = 0;
  // Bytes the file holds so far, buffered bytes included. For gzip, the compressed bytes zlib
  // has emitted: it lags behind by what zlib still holds (at most a block, tens of KiB).
  virtual std::uint64_t size() const = 0;
  const std::string& path() const { return path_; }

 protected:
  std::string path_;
};

// Calls `tick` every `interval` on a thread of its own until stop(): outputs that buffer use it
// to push their buffer out when traffic pauses. After stop() returns no tick runs.
class PeriodicFlush {
 public:
  PeriodicFlush() = default;
  PeriodicFlush(const PeriodicFlush&) = delete;
  PeriodicFlush& operator=(const PeriodicFlush&) = delete;
  ~PeriodicFlush() { stop(); }

  void start(std::chrono::nanoseconds interval, std::function<void()> tick) {
    stop();
    if (interval <= std::chrono::nanoseconds::zero()) return;
    thread_ = std::jthread([interval, tick = std::move(tick)](std::stop_token stop) {
      std::mutex mutex;
      std::condition_variable_any wakeup;
      std::unique_lock lock(mutex);
      while (!wakeup.wait_for(lock, stop, interval, [] { return false; }) && !stop.stop_requested()) tick();
    });
  }
  void stop() {
    if (thread_.joinable()) {
      thread_.request_stop();
      thread_.join();
    }
  }

 private:
  std::jthread thread_;
};

// The size of a record as written: header + payload + separator.
std::size_t record_size(const Message& message);

// Files matching a glob pattern (`*`, `?`, `[...]` as in the shell), in chunk order: names
// differing only in a trailing `_N` index are ordered by N numerically (`x_2.gor` before
// `x_10.gor`), all others by name. A pattern without wildcards names one file, matched only
// when it exists. Throws std::runtime_error for an unreadable directory.
std::vector<std::string> expand_glob(const std::string& pattern);

// The `%Y %m %d %H %M %S` name patterns (local time), as GoReplay's file output has them;
// `%%` is a literal %. Returns nullopt when `pattern` holds any other % sequence.
std::optional<std::string> expand_time_pattern(std::string_view pattern, std::time_t when);
bool has_time_pattern(std::string_view pattern);

// Chunk names: `out.gor` -> `out_3.gor`, `out.gor.gz` -> `out_3.gor.gz`, `out` -> `out_3`.
std::string chunk_name(std::string_view path, std::uint64_t index);
// The highest index N of existing chunk files chunk_name(path, N); nullopt when there are none.
std::optional<std::uint64_t> last_chunk_index(std::string_view path);

}  // namespace doppel::gor
