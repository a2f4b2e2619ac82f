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
#include "doppel/output_file.hpp"

namespace doppel::gor {

// The largest payload (the HTTP message after a record's header line) a reader keeps by
// default: raw's default max_message_size, so that what a capture emitted reads back.
inline constexpr std::size_t kDefaultMaxPayloadSize = std::size_t{64} << 20;
// The longest header line a record may have ("TYPE ID TIMESTAMP LATENCY" is under 80 bytes).
inline constexpr std::size_t kMaxHeaderLine = 4096;

struct FileProbe;

// Reads one .gor file (gzip or plain, told apart by the gzip magic bytes, whatever the name)
// and splits it into records at the separator. Records are views into an internal buffer,
// valid until the next call to next(). Memory is bounded: a record whose payload exceeds
// `max_payload_size` is skipped up to the next separator without being held, so the buffer
// never grows past max(buffer_size, max_payload_size + kMaxHeaderLine + separator).
class RecordReader {
 public:
  enum class Status {
    record,     // `bytes` is one record (header line + payload, no separator)
    end,        // clean end of file (nothing after the last separator)
    truncated,  // the input ended inside a record: the file has no closing separator (`bytes` is
                // what was there), or its gzip stream is cut off (`bytes` may then be empty)
    too_large,  // a record whose payload exceeds max_payload_size was skipped: `bytes` is its
                // first bytes only, `size` its full size (up to the end of the file when no
                // separator follows)
    damaged,    // gzip data that cannot be decompressed: the rest of the file is unreadable.
                // error() says why; `bytes` holds what was read of the record it cut
    error,      // an I/O error (EIO, ...); error() says which. `bytes` holds what was read
  };
  struct Record {
    std::string_view bytes;
    std::uint64_t offset = 0;  // of the record's first byte in the (uncompressed) stream
    std::uint64_t size = 0;    // of the whole record: bytes.size(), except for too_large
  };

  // Throws std::system_error when the file cannot be opened, or the address space for the
  // buffer's limit cannot be reserved (memory is used only as records need it).
  explicit RecordReader(const std::string& path, std::size_t buffer_size = 1 << 20,
                        std::size_t max_payload_size = kDefaultMaxPayloadSize);
  ~RecordReader();
  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;

  Status next(Record& out);
  // Up to `size` bytes from the current position (fewer at the end of the input or after an
  // error), without consuming them. Valid until the next call to next() or peek().
  std::string_view peek(std::size_t size);
  const std::string& path() const { return path_; }
  bool compressed() const;
  const std::string& error() const { return error_; }
  // Bytes consumed so far (uncompressed).
  std::uint64_t position() const { return consumed_; }
  // Bytes of the file read so far, for progress shown to users: position() for a plain file;
  // for a gzip file, the compressed bytes zlib read, in the share the records handed out have
  // of what it decompressed (an estimate within one buffer).
  std::uint64_t file_position() const;
  // The buffer's size now: what the reader holds in memory, for tests of the bound.
  std::size_t buffer_capacity() const { return capacity_; }

 private:
  friend FileProbe probe_file(const std::string& path);  // reads how a peek ended
  class Source;
  enum class Failure { none, io, cut, damaged };
  bool fill();  // reads more; false at end of input or on error (error_, failure_ set)
  Status finish(Record& out);  // at the end of the input: what is left, and why
  // The record in buffer_[start, end) carries more payload than max_payload_size_.
  bool payload_over_bound(std::size_t start, std::size_t end) const;

  std::string path_;
  std::unique_ptr<Source> source_;
  // buffer_limit_ bytes are reserved once as an anonymous mapping, used up to capacity_, which
  // doubles as records need it: growing moves no byte, and pages never used are never resident
  // (a malloc'd buffer grown by realloc held old and new copies at once under jemalloc).
  char* buffer_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t buffer_limit_ = 0;  // capacity_ grows up to this, never further
  std::size_t record_limit_ = 0;  // more bytes than this without a separator: skipped
  std::size_t max_payload_size_ = 0;
  std::size_t begin_ = 0, end_ = 0, scanned_ = 0;
  std::uint64_t consumed_ = 0;  // stream offset of buffer_[begin_], or of the record being skipped
  bool eof_ = false;
  Failure failure_ = Failure::none;
  std::string error_;
  // Skipping a record over the bound: bytes of it already discarded, and its first bytes.
  bool skipping_ = false;
  std::uint64_t skipped_ = 0;
  std::string skipped_start_;
};

// What the first bytes of a file say it is, read without reading the rest (at most
// kMaxHeaderLine bytes, decompressed): used to refuse a file that is not a .gor file before
// anything is replayed, and to order files by their first timestamp.
struct FileProbe {
  enum class Verdict {
    records,  // starts with a valid record header line
    empty,    // holds nothing (or a gzip stream of nothing): a recording of no traffic
    not_gor,  // `problem` says what was expected and what was found
  };
  Verdict verdict = Verdict::empty;
  bool gzip = false;
  std::optional<Header> first;  // the first record's header, for `records`
  std::string problem;
};
// Throws std::system_error when `path` cannot be opened, std::runtime_error on an I/O error.
FileProbe probe_file(const std::string& path);

// A buffered .gor record sink on a file or a file descriptor, plain or gzip: a doppel::OutputFile
// (doppel/output_file.hpp) that formats records. How files are created, what is counted as
// written, and how a full disk is survived (no partial record left, writing resumes when space
// returns) are described there.
class RecordWriter {
 public:
  // Opens `path` under `policy`: created with policy.mode, never through a symbolic link, an
  // existing file refused unless appended to or overwritten. A gzip file gets one gzip member
  // per batch (appending adds members), which every gzip reader (and ours) reads as one stream.
  static std::unique_ptr<RecordWriter> open_file(const std::string& path, const OutputFilePolicy& policy,
                                                 bool gzip, std::size_t buffer_size = 256 << 10);
  // The same with mode 0600 and an existing file appended to (`append`) or else replaced.
  static std::unique_ptr<RecordWriter> open_file(const std::string& path, bool append, bool gzip,
                                                 std::size_t buffer_size = 256 << 10);
  // Writes to `fd` (not owned, never closed), e.g. stdout. A failed write is final there.
  static std::unique_ptr<RecordWriter> on_descriptor(int fd, std::size_t buffer_size = 64 << 10);
  virtual ~RecordWriter() = default;

  // Header + payload + separator: the record as GoReplay writes it. Returns its size
  // (uncompressed), what record_size(message) says. Throws std::system_error when a write
  // failed: this record and the unwritten batch before it are lost, counted in progress().
  virtual std::size_t write(const Message& message) = 0;
  // Pushes buffered records to the OS; with `sync`, to the disk too (fdatasync). Throws as write().
  virtual void flush(bool sync) = 0;
  // Flushes, ends the gzip member, closes the file. Idempotent; throws as write().
  virtual void close() = 0;
  // Bytes the file holds so far, buffered bytes included. For gzip, the compressed bytes zlib
  // has emitted: it lags behind by what zlib still holds (at most a block, tens of KiB).
  virtual std::uint64_t size() const = 0;
  // Records written (accepted by the file; for gzip, their member written whole) and lost.
  virtual const OutputFile::Progress& progress() const = 0;
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
