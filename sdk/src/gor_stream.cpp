#include "doppel/gor_stream.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <system_error>
#include <tuple>
#include <utility>

namespace doppel::gor {
namespace {

std::system_error errno_error(const std::string& what) {
  return std::system_error(errno, std::generic_category(), what);
}

// "dir/out.gor.gz" -> {"dir/out", ".gor.gz"}; "dir/out" -> {"dir/out", ""}. The extension is the
// last one of the file name, or the last two when the last is ".gz".
std::pair<std::string_view, std::string_view> split_extension(std::string_view path) {
  auto slash = path.rfind('/');
  std::size_t name_start = slash == std::string_view::npos ? 0 : slash + 1;
  auto dot = path.rfind('.');
  if (dot == std::string_view::npos || dot <= name_start) return {path, {}};
  if (path.substr(dot) == ".gz") {
    auto inner = path.rfind('.', dot - 1);
    if (inner != std::string_view::npos && inner > name_start && dot > 0) dot = inner;
  }
  return {path.substr(0, dot), path.substr(dot)};
}

// "out_12" -> {"out", 12}; "out" -> {"out", nullopt}.
std::pair<std::string_view, std::optional<std::uint64_t>> split_index(std::string_view stem) {
  auto underscore = stem.rfind('_');
  if (underscore == std::string_view::npos || underscore + 1 == stem.size()) return {stem, std::nullopt};
  std::uint64_t index = 0;
  for (char c : stem.substr(underscore + 1)) {
    if (c < '0' || c > '9') return {stem, std::nullopt};
    index = index * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return {stem.substr(0, underscore), index};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Reading

namespace {

// How much of a skipped record's start is kept to show where it was.
constexpr std::size_t kSkippedStart = 64;

// `bytes` as text for a message: printable ASCII as is, the rest as \xNN, at most `max` bytes.
std::string printable(std::string_view bytes, std::size_t max) {
  std::string out;
  for (unsigned char c : bytes.substr(0, max)) {
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  if (bytes.size() > max) out += "...";
  return out;
}

}  // namespace

class RecordReader::Source {
 public:
  Source(int fd, bool gzip) : fd_(fd) {
    if (gzip) {
      gz_ = gzdopen(fd, "rb");
      if (gz_ == nullptr) {
        ::close(fd);
        throw std::runtime_error("cannot start gzip decompression");
      }
      gzbuffer(gz_, 256 << 10);
    }
  }
  ~Source() {
    if (gz_ != nullptr)
      gzclose(gz_);  // closes fd_ too
    else
      ::close(fd_);
  }
  bool gzip() const { return gz_ != nullptr; }
  // Compressed bytes zlib has read from the file; -1 when not compressed.
  long compressed_offset() const { return gz_ != nullptr ? static_cast<long>(gzoffset(gz_)) : -1; }

  // Bytes read, 0 at the end, -1 on error (with `error` and `failure` set).
  long read(char* into, std::size_t size, std::string& error, Failure& failure) {
    if (gz_ != nullptr) {
      int n = gzread(gz_, into, static_cast<unsigned>(std::min<std::size_t>(size, 1u << 30)));
      int code = Z_OK;
      const char* message = gzerror(gz_, &code);
      if (n <= 0 && code != Z_OK) {
        std::string_view text = message != nullptr ? message : "error";
        // zlib names the stream "<fd:N>: " when opened with gzdopen: the caller names the file.
        if (text.starts_with("<fd:") && text.find(">: ") != std::string_view::npos)
          text.remove_prefix(text.find(">: ") + 3);
        error = "gzip: " + std::string(text);
        // zlib reports a cut-off stream as Z_BUF_ERROR "unexpected end of file", a failed
        // read() as Z_ERRNO; anything else is data it cannot decompress.
        failure = code == Z_BUF_ERROR ? Failure::cut : code == Z_ERRNO ? Failure::io : Failure::damaged;
        return -1;
      }
      return n;
    }
    for (;;) {
      ssize_t n = ::read(fd_, into, size);
      if (n >= 0) return static_cast<long>(n);
      if (errno == EINTR) continue;
      error = std::strerror(errno);
      failure = Failure::io;
      return -1;
    }
  }

 private:
  int fd_;
  gzFile gz_ = nullptr;
};

RecordReader::RecordReader(const std::string& path, std::size_t buffer_size, std::size_t max_payload_size)
    : path_(path), max_payload_size_(max_payload_size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw errno_error("open " + path);
  unsigned char magic[2] = {0, 0};
  ssize_t got = ::pread(fd, magic, 2, 0);
  bool gzip = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  source_ = std::make_unique<Source>(fd, gzip);
  capacity_ = std::max<std::size_t>(buffer_size, 4096);
  // A record longer than this cannot be kept whatever its header line: it is skipped as soon
  // as that many bytes of it have been seen without a separator (saturating: no overflow).
  constexpr std::size_t kLargest = std::numeric_limits<std::size_t>::max() - kMaxHeaderLine - kSeparator.size();
  record_limit_ = std::min(max_payload_size, kLargest) + kMaxHeaderLine;
  buffer_limit_ = std::max(capacity_, record_limit_ + kSeparator.size());
  // Address space only (MAP_NORESERVE): memory is used as bytes are read into it.
  void* map =
      ::mmap(nullptr, buffer_limit_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (map == MAP_FAILED)
    throw errno_error("reserve " + std::to_string(buffer_limit_) + " bytes to read records of " + path);
  buffer_ = static_cast<char*>(map);
}

RecordReader::~RecordReader() { ::munmap(buffer_, buffer_limit_); }

bool RecordReader::compressed() const { return source_->gzip(); }

std::uint64_t RecordReader::file_position() const {
  long offset = source_->compressed_offset();
  if (offset < 0) return consumed_;
  // zlib has read `offset` compressed bytes for the consumed_ + buffered bytes it gave; of those,
  // the records handed out are consumed_: their share of the compressed bytes is the estimate
  // (a whole buffer of 1 MiB would otherwise count as read before its records are).
  std::uint64_t decompressed = consumed_ + (end_ - begin_);
  if (decompressed == 0) return 0;
  return static_cast<std::uint64_t>(static_cast<double>(offset) * static_cast<double>(consumed_) /
                                    static_cast<double>(decompressed));
}

bool RecordReader::fill() {
  if (eof_) return false;
  if (begin_ > 0 && (end_ == capacity_ || begin_ >= capacity_ / 2)) {
    // Move the unfinished record to the front before reading more.
    std::memmove(buffer_, buffer_ + begin_, end_ - begin_);
    scanned_ -= begin_;
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == capacity_) {
    // One record larger than the buffer: grow, but never past the limit (next() skips a record
    // that would need more before asking for more bytes).
    capacity_ = std::min(capacity_ * 2, buffer_limit_);
  }
  long n = source_->read(buffer_ + end_, capacity_ - end_, error_, failure_);
  if (n <= 0) {
    eof_ = true;
    return false;
  }
  end_ += static_cast<std::size_t>(n);
  return true;
}

std::string_view RecordReader::peek(std::size_t size) {
  while (end_ - begin_ < size && fill()) {
  }
  return {buffer_ + begin_, std::min(size, end_ - begin_)};
}

RecordReader::Status RecordReader::next(Record& out) {
  for (;;) {
    if (scanned_ < begin_) scanned_ = begin_;
    const char* base = buffer_;
    const void* hit = ::memmem(base + scanned_, end_ - scanned_, kSeparator.data(), kSeparator.size());
    if (hit != nullptr) {
      std::size_t at = static_cast<std::size_t>(static_cast<const char*>(hit) - base);
      std::size_t start = begin_, after = at + kSeparator.size();
      out.offset = consumed_;
      out.size = skipped_ + (at - begin_);
      bool too_large = skipping_;
      if (!too_large && payload_over_bound(start, at)) {
        too_large = true;
        skipped_start_.assign(base + start, std::min(at - start, kSkippedStart));
      }
      consumed_ += out.size + kSeparator.size();
      begin_ = scanned_ = after;
      if (too_large) {
        out.bytes = skipped_start_;
        skipping_ = false;
        skipped_ = 0;
        return Status::too_large;
      }
      out.bytes = std::string_view(base + start, at - start);
      return Status::record;
    }
    // The separator may straddle the end of what we have: rescan its possible start next time.
    std::size_t keep = std::min(end_ - begin_, kSeparator.size() - 1);
    scanned_ = end_ - keep;
    if (skipping_ || end_ - begin_ - keep > record_limit_) {
      // Over the bound: only the bytes that may begin a separator are kept, the rest is
      // counted and let go, so memory stays bounded however long the record runs.
      if (!skipping_) {
        skipping_ = true;
        skipped_ = 0;
        skipped_start_.assign(base + begin_, kSkippedStart);
      }
      skipped_ += end_ - keep - begin_;
      begin_ = scanned_;
    }
    if (!fill()) return finish(out);
  }
}

bool RecordReader::payload_over_bound(std::size_t start, std::size_t end) const {
  if (end - start <= max_payload_size_) return false;
  // Larger than the bound as a whole: measure its payload, after the header line.
  const void* newline = std::memchr(buffer_ + start, '\n', std::min(end - start, kMaxHeaderLine + 1));
  std::size_t payload_start =
      newline != nullptr ? static_cast<std::size_t>(static_cast<const char*>(newline) - buffer_) + 1 : start;
  return end - payload_start > max_payload_size_;
}

RecordReader::Status RecordReader::finish(Record& out) {
  std::size_t left = end_ - begin_;
  // The last record, unended, is bound like any other (it was short of being skipped while read).
  if (!skipping_ && payload_over_bound(begin_, end_)) {
    skipping_ = true;
    skipped_start_.assign(buffer_ + begin_, std::min(left, kSkippedStart));
  }
  out.offset = consumed_;
  out.size = skipped_ + left;
  out.bytes = skipping_ ? std::string_view(skipped_start_) : std::string_view(buffer_ + begin_, left);
  consumed_ += out.size;
  begin_ = scanned_ = end_;
  if (skipping_) {  // a failure that ended it, if any, is reported by the next call
    skipping_ = false;
    skipped_ = 0;
    return Status::too_large;
  }
  // A failure is reported once; later calls find a clean end.
  Failure failure = std::exchange(failure_, Failure::none);
  switch (failure) {
    case Failure::io:
      return Status::error;
    case Failure::damaged:
      return Status::damaged;
    case Failure::cut:
      return Status::truncated;
    case Failure::none:
      break;
  }
  return out.bytes.empty() ? Status::end : Status::truncated;
}

FileProbe probe_file(const std::string& path) {
  RecordReader reader(path, 16 << 10, kMaxHeaderLine);
  FileProbe probe;
  probe.gzip = reader.compressed();
  std::string_view start = reader.peek(kMaxHeaderLine + 1);
  if (reader.failure_ == RecordReader::Failure::io)
    throw std::runtime_error("cannot read " + path + ": " + reader.error());
  if (start.empty() && reader.error().empty()) {
    probe.verdict = FileProbe::Verdict::empty;
    return probe;
  }
  auto newline = start.find('\n');
  if (newline != std::string_view::npos) probe.first = parse_header(start.substr(0, newline));
  if (probe.first) {
    probe.verdict = FileProbe::Verdict::records;
    return probe;
  }
  probe.verdict = FileProbe::Verdict::not_gor;
  std::string found;
  if (start.empty())
    found = "it starts with the gzip magic bytes 1f 8b but does not decompress: " + reader.error();
  else if (newline != std::string_view::npos)
    found = "its first line is \"" + printable(start.substr(0, newline), 60) + "\"";
  else if (start.size() > kMaxHeaderLine)
    found = "no line break in its first " + std::to_string(kMaxHeaderLine) + " bytes, which begin \"" +
            printable(start, 40) + "\"";
  else
    found = "it holds only \"" + printable(start, 60) + "\", without a line break";
  if (probe.gzip && !start.empty()) found += " (after gzip decompression)";
  std::string name_note;
  if (!probe.gzip && path.ends_with(".gz")) name_note = "; the name ends in .gz but the file is not gzip (no 1f 8b)";
  probe.problem = path + " is not a .gor file (expected a first line \"TYPE ID TIMESTAMP [LATENCY]\" such as \"1 " +
                  "8e0f2a5c0000000000000001 1700000000000000000 0\"; " + found + name_note + ")";
  return probe;
}

// ---------------------------------------------------------------------------------------------
// Writing

namespace {

class FileRecordWriter : public RecordWriter {
 public:
  explicit FileRecordWriter(std::unique_ptr<OutputFile> file) : file_(std::move(file)) { path_ = file_->path(); }

  std::size_t write(const Message& message) override {
    format_header_line(message);
    return file_->add({header_, message.payload, kSeparator});
  }
  void flush(bool sync) override { file_->flush(sync); }
  void close() override { file_->close(); }
  std::uint64_t size() const override { return file_->size(); }
  const OutputFile::Progress& progress() const override { return file_->progress(); }

 private:
  // The header line into header_, which keeps its capacity: no allocation per record.
  void format_header_line(const Message& m) {
    header_.clear();
    append_header(header_, m);
  }

  std::unique_ptr<OutputFile> file_;
  std::string header_;
};

}  // namespace

std::unique_ptr<RecordWriter> RecordWriter::open_file(const std::string& path, const OutputFilePolicy& policy,
                                                      bool gzip, std::size_t buffer_size) {
  return std::make_unique<FileRecordWriter>(OutputFile::open(path, policy, gzip, buffer_size));
}

std::unique_ptr<RecordWriter> RecordWriter::open_file(const std::string& path, bool append, bool gzip,
                                                      std::size_t buffer_size) {
  OutputFilePolicy policy;
  policy.existing = append ? ExistingFile::append : ExistingFile::overwrite;
  return open_file(path, policy, gzip, buffer_size);
}

std::unique_ptr<RecordWriter> RecordWriter::on_descriptor(int fd, std::size_t buffer_size) {
  return std::make_unique<FileRecordWriter>(OutputFile::on_descriptor(fd, "fd " + std::to_string(fd), buffer_size));
}

std::size_t record_size(const Message& m) {
  auto digits = [](std::int64_t v) {
    std::size_t n = v < 0 ? 2 : 1;
    std::uint64_t u = v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
    while (u >= 10) {
      u /= 10;
      ++n;
    }
    return n;
  };
  std::size_t extensions = 0;
  if (!m.meta.proto.empty()) {
    extensions = 7 + m.meta.proto.size();  // " proto="
    if (m.meta.stream_id != 0) extensions += 8 + digits(m.meta.stream_id);  // " stream="
  }
  if (m.meta.tls) {
    std::string fields;  // rare, and its rules are append_tls_fields' alone
    append_tls_fields(fields, *m.meta.tls);
    extensions += fields.size();
  }
  return 1 + 1 + m.id.size() + 1 + digits(m.timestamp_ns) + 1 + digits(m.latency_ns) + extensions + 1 +
         m.payload.size() + kSeparator.size();
}

// ---------------------------------------------------------------------------------------------
// File names

std::vector<std::string> expand_glob(const std::string& pattern) {
  glob_t g{};
  int rc = ::glob(pattern.c_str(), GLOB_TILDE | GLOB_NOSORT, nullptr, &g);
  std::vector<std::string> files;
  if (rc == 0) {
    for (std::size_t i = 0; i < g.gl_pathc; ++i) {
      struct stat st {};
      if (::stat(g.gl_pathv[i], &st) == 0 && S_ISDIR(st.st_mode)) continue;
      files.emplace_back(g.gl_pathv[i]);
    }
  }
  ::globfree(&g);
  if (rc == GLOB_ABORTED) throw std::runtime_error("cannot read a directory while expanding " + pattern);
  if (rc == GLOB_NOSPACE) throw std::runtime_error("out of memory while expanding " + pattern);

  // Chunks of one series interleave by index whatever their extension (x_2.gor.gz, x_10.gor).
  using Key = std::tuple<std::string, long long, std::string, std::string>;
  std::vector<std::pair<Key, std::string>> keyed;
  keyed.reserve(files.size());
  for (auto& f : files) {
    auto [stem, ext] = split_extension(f);
    auto [base, index] = split_index(stem);
    keyed.push_back(
        {Key{std::string(base), index ? static_cast<long long>(*index) : -1LL, std::string(ext), f}, std::move(f)});
  }
  std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  files.clear();
  for (auto& [key, f] : keyed) files.push_back(std::move(f));
  return files;
}

bool has_time_pattern(std::string_view pattern) { return pattern.find('%') != std::string_view::npos; }

std::optional<std::string> expand_time_pattern(std::string_view pattern, std::time_t when) {
  std::tm tm{};
  ::localtime_r(&when, &tm);
  std::string out;
  out.reserve(pattern.size() + 16);
  auto two = [&out](int v) {
    out += static_cast<char>('0' + v / 10);
    out += static_cast<char>('0' + v % 10);
  };
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c != '%') {
      out += c;
      continue;
    }
    if (i + 1 == pattern.size()) return std::nullopt;
    switch (pattern[++i]) {
      case 'Y':
        out += std::to_string(tm.tm_year + 1900);
        break;
      case 'm':
        two(tm.tm_mon + 1);
        break;
      case 'd':
        two(tm.tm_mday);
        break;
      case 'H':
        two(tm.tm_hour);
        break;
      case 'M':
        two(tm.tm_min);
        break;
      case 'S':
        two(tm.tm_sec);
        break;
      case '%':
        out += '%';
        break;
      default:
        return std::nullopt;
    }
  }
  return out;
}

std::string chunk_name(std::string_view path, std::uint64_t index) {
  auto [stem, ext] = split_extension(path);
  std::string out(stem);
  out += '_';
  out += std::to_string(index);
  out += ext;
  return out;
}

std::optional<std::uint64_t> last_chunk_index(std::string_view path) {
  auto [stem, ext] = split_extension(path);
  auto slash = stem.rfind('/');
  std::string dir = slash == std::string_view::npos ? "." : std::string(stem.substr(0, slash == 0 ? 1 : slash));
  std::string_view name_stem = slash == std::string_view::npos ? stem : stem.substr(slash + 1);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return std::nullopt;
  std::optional<std::uint64_t> best;
  while (dirent* entry = ::readdir(d)) {
    std::string_view name(entry->d_name);
    if (name.size() <= name_stem.size() + 1 + ext.size()) continue;
    if (name.substr(0, name_stem.size()) != name_stem || name[name_stem.size()] != '_') continue;
    if (name.substr(name.size() - ext.size()) != ext) continue;
    std::string_view digits = name.substr(name_stem.size() + 1, name.size() - ext.size() - name_stem.size() - 1);
    if (digits.empty() || digits.size() > 18) continue;
    std::uint64_t index = 0;
    bool all_digits = true;
    for (char c : digits) {
      if (c < '0' || c > '9') {
        all_digits = false;
        break;
      }
      index = index * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (all_digits && (!best || index > *best)) best = index;
  }
  ::closedir(d);
  return best;
}

}  // namespace doppel::gor
