#pragma once
// Files that outputs write (.gor captures, JSONL verdicts, HTML reports) hold captured traffic,
// credentials included. This is the one place that decides how such a file is created and
// written:
//   - created with mode 0600 unless the pipeline says otherwise (the umask still applies);
//   - never through a symbolic link at the final path component (O_NOFOLLOW), so a planted
//     link cannot redirect a write onto another file;
//   - an existing file is never truncated or added to unless the pipeline says so;
//   - a full disk never leaves half a record behind, counters say what reached the file, and
//     writing resumes when space returns (OutputFile).
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace doppel {

class Options;

// What to do when the file to write exists already.
enum class ExistingFile {
  refuse,     // an error naming the file (the default: a capture is never lost by accident)
  append,     // add to its end
  overwrite,  // truncate it and start anew
};

struct OutputFilePolicy {
  ExistingFile existing = ExistingFile::refuse;
  // Permission bits of a file doppel creates (the process umask still removes bits); an
  // existing file keeps its own.
  unsigned mode = 0600;
};

// "0600", "600", "0o640" -> the bits; nullopt for anything else (not octal, above 0777).
std::optional<unsigned> parse_file_mode(std::string_view text);
// 0600 -> "0600".
std::string format_file_mode(unsigned mode);

// Reads the options `append` (boolean), `overwrite` (boolean) and `mode` (string) that every
// output writing files declares; throws ConfigError at the offending key (both flags set, a
// mode that is not octal).
OutputFilePolicy output_file_policy(const Options& options);

// Why `path` cannot be written under `policy` ("... is a symbolic link ...", "... already
// exists; set append = true ...", "... is a directory"), or nullopt when nothing stands in the
// way as far as can be told before opening it; open_output_file() checks again, atomically.
std::optional<std::string> output_path_problem(const std::string& path, const OutputFilePolicy& policy);

// Opens `path` for writing under `policy` and returns the descriptor (close-on-exec, O_APPEND
// when appending). Throws std::system_error whose what() names the path and says what to do.
int open_output_file(const std::string& path, const OutputFilePolicy& policy);

// Replaces `path` with `content` as a whole: writes a new file in the same directory (created
// with O_EXCL, `mode`), syncs it, and rename()s it over `path`. A reader sees the old file or
// the new one, never half of one; a symbolic link at `path` is replaced, never followed. Throws
// std::system_error naming the path; the temporary file is removed on failure.
void replace_file(const std::string& path, std::string_view content, unsigned mode = 0600);

// A file written as a sequence of records (a .gor record, a JSON line): buffered, plain or
// gzip, and never left holding part of a record.
//
// Counting: a record is `written` once write(2) accepted all its bytes; for gzip, once the
// gzip member holding it was written whole. Records are batched (buffer_size bytes,
// uncompressed) and each batch of a gzip file is one complete gzip member, so the file is a
// valid gzip stream after every batch; gzip readers (and doppel) read consecutive members as
// one stream.
//
// Failures: when a write fails (disk full, I/O error), the file is truncated back to the end of
// the last complete record (gzip: member), and the records of the failed batch are counted as
// `lost`, together with the record being added when the failure happened during add(). There
// is no failed state: the next batch tries again, so writing resumes when space returns.
// Exception: on a descriptor the writer did not open (standard output), nothing can be taken
// back, and a failure is final (a closed pipe does not come back): every later record is lost.
class OutputFile {
 public:
  struct Progress {
    std::uint64_t records_written = 0;  // accepted by the file, as above
    std::uint64_t bytes_written = 0;    // their size before compression
    std::uint64_t records_lost = 0;     // dropped by a failed write (none of their bytes remain)
  };

  // Opens `path` with open_output_file().
  static std::unique_ptr<OutputFile> open(const std::string& path, const OutputFilePolicy& policy, bool gzip,
                                          std::size_t buffer_size = 256 << 10);
  // Writes to `fd`, which stays open when the writer goes (standard output). Plain only.
  static std::unique_ptr<OutputFile> on_descriptor(int fd, std::string name, std::size_t buffer_size = 64 << 10);

  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Adds one record made of `pieces`, written back to back; returns its size. Throws
  // std::system_error when a write failed: this record and the batch before it are lost
  // (counted in progress()), the file ends with a complete record again.
  std::size_t add(std::initializer_list<std::string_view> pieces);
  // Writes the batch out (gzip: ends its member); with `sync`, fdatasync()s too. Throws as add().
  void flush(bool sync);
  // Flushes, then closes the file. Idempotent; throws as add() (the file is closed anyway).
  void close();

  const Progress& progress() const { return progress_; }
  // Bytes the file holds, pending ones included: plain, the buffer; gzip, the compressed
  // bytes zlib has emitted for the open member (it lags by what zlib holds, tens of KiB).
  std::uint64_t size() const;
  const std::string& path() const { return path_; }

 private:
  struct Gzip;
  OutputFile(int fd, bool owned, std::string path, bool gzip, std::size_t buffer_size);

  // Writes the batch out and counts it written; on failure takes it back, counts it lost and
  // returns false (error_ says why).
  bool write_batch();
  bool write_plain_batch();
  bool write_gzip_batch();
  bool add_plain(std::initializer_list<std::string_view> pieces, std::size_t size);
  bool add_gzip(std::initializer_list<std::string_view> pieces, std::size_t size);
  // Compresses `bytes` into the open member, writing the member out as member_ fills.
  bool deflate_into_member(std::string_view bytes, int flush_mode);
  bool write_member_part();
  void lose_member(std::uint64_t extra_records);
  // Writes at the end of the file; returns the bytes written before an error (error_ set).
  std::size_t write_out(const char* data, std::size_t size);
  // Before writing: the file must end at committed_ (a failed take_back() is retried).
  bool ready_to_write();
  // After a failed write: truncates the file back to committed_; false when it could not.
  bool take_back();
  [[noreturn]] void throw_error(std::uint64_t also_lost);

  int fd_;
  bool owned_;
  bool truncatable_ = false;  // a regular file we opened: a failed write can be taken back
  bool closed_ = false;
  bool broken_ = false;       // failed, and could not be taken back: final
  bool untruncated_ = false;  // a take_back() failed: retried before the next write
  int error_ = 0;             // errno of the last failure
  std::string path_;
  std::size_t capacity_;
  std::uint64_t committed_ = 0;  // file offset after the last complete record (or member)

  // Plain: the batch, and where each of its records ends in it.
  std::vector<char> buffer_;
  std::vector<std::size_t> record_ends_;

  // Gzip: compressed bytes of the open member not yet written (member_used_ of member_), and
  // the batch the member holds.
  std::unique_ptr<Gzip> gzip_;
  std::vector<char> member_;
  std::size_t member_used_ = 0;
  std::uint64_t member_written_ = 0;  // bytes of the open member already written out
  std::uint64_t batch_records_ = 0;
  std::uint64_t batch_bytes_ = 0;

  Progress progress_;
};

}  // namespace doppel
