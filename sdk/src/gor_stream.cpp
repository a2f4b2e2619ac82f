#include "doppel/gor_stream.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <tuple>

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

void write_all(int fd, const char* data, std::size_t size, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw errno_error("write " + path);
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Reading

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

  // Bytes read, 0 at the end, -1 on error (with `error` set).
  long read(char* into, std::size_t size, std::string& error) {
    if (gz_ != nullptr) {
      int n = gzread(gz_, into, static_cast<unsigned>(std::min<std::size_t>(size, 1u << 30)));
      int code = Z_OK;
      const char* message = gzerror(gz_, &code);
      if (n <= 0 && code != Z_OK) {
        // zlib reports a cut-off stream as Z_BUF_ERROR "unexpected end of file".
        error = std::string("gzip: ") + (message != nullptr ? message : "error");
        return -1;
      }
      return n;
    }
    for (;;) {
      ssize_t n = ::read(fd_, into, size);
      if (n >= 0) return static_cast<long>(n);
      if (errno == EINTR) continue;
      error = std::strerror(errno);
      return -1;
    }
  }

 private:
  int fd_;
  gzFile gz_ = nullptr;
};

RecordReader::RecordReader(const std::string& path, std::size_t buffer_size) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw errno_error("open " + path);
  unsigned char magic[2] = {0, 0};
  ssize_t got = ::pread(fd, magic, 2, 0);
  bool gzip = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  source_ = std::make_unique<Source>(fd, gzip);
  buffer_.resize(std::max<std::size_t>(buffer_size, 4096));
}

RecordReader::~RecordReader() = default;

bool RecordReader::compressed() const { return source_->gzip(); }

bool RecordReader::fill() {
  if (eof_) return false;
  if (begin_ > 0 && (end_ == buffer_.size() || begin_ >= buffer_.size() / 2)) {
    // Move the unfinished record to the front before reading more.
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    scanned_ -= begin_;
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);  // one record larger than the buffer
  long n = source_->read(buffer_.data() + end_, buffer_.size() - end_, error_);
  if (n <= 0) {
    eof_ = true;
    return false;
  }
  end_ += static_cast<std::size_t>(n);
  return true;
}

RecordReader::Status RecordReader::next(Record& out) {
  for (;;) {
    if (scanned_ < begin_) scanned_ = begin_;
    const char* base = buffer_.data();
    const void* hit = ::memmem(base + scanned_, end_ - scanned_, kSeparator.data(), kSeparator.size());
    if (hit != nullptr) {
      std::size_t at = static_cast<std::size_t>(static_cast<const char*>(hit) - base);
      out.bytes = std::string_view(base + begin_, at - begin_);
      out.offset = consumed_;
      std::size_t after = at + kSeparator.size();
      consumed_ += after - begin_;
      begin_ = scanned_ = after;
      return Status::record;
    }
    // The separator may straddle the end of what we have: rescan its possible start next time.
    scanned_ = end_ >= begin_ + kSeparator.size() ? end_ - (kSeparator.size() - 1) : begin_;
    if (!fill()) {
      out.offset = consumed_;
      out.bytes = std::string_view(buffer_.data() + begin_, end_ - begin_);
      consumed_ += end_ - begin_;
      begin_ = scanned_ = end_;
      if (!error_.empty()) return Status::error;
      return out.bytes.empty() ? Status::end : Status::truncated;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

namespace {

class FileRecordWriter : public RecordWriter {
 public:
  FileRecordWriter(int fd, bool owned, bool gzip, std::size_t buffer_size, std::string path)
      : fd_(fd), owned_(owned), gzip_(gzip) {
    path_ = std::move(path);
    capacity_ = buffer_size;
    if (!gzip_) buffer_.reserve(buffer_size);
    if (owned_) {
      struct stat st {};
      if (::fstat(fd_, &st) == 0) on_disk_ = static_cast<std::uint64_t>(st.st_size);
    }
    if (gzip_) {
      std::memset(&z_, 0, sizeof z_);
      // windowBits 15 + 16: a gzip wrapper, as `gzip` and GoReplay write.
      if (deflateInit2(&z_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("cannot start gzip compression for " + path_);
      out_.resize(capacity_);
    }
  }
  ~FileRecordWriter() override {
    try {
      close();
    } catch (...) {
      // Destructors must not throw; close() explicitly to see errors.
    }
  }

  std::size_t write(const Message& message) override {
    check();
    format_header_line(message);
    append(header_.data(), header_.size());
    append(message.payload.data(), message.payload.size());
    append(kSeparator.data(), kSeparator.size());
    return header_.size() + message.payload.size() + kSeparator.size();
  }

  void flush(bool sync) override {
    check();
    try {
      drain(gzip_ ? Z_SYNC_FLUSH : Z_NO_FLUSH);
      if (sync && owned_ && ::fdatasync(fd_) != 0 && errno != EINVAL) throw errno_error("fdatasync " + path_);
    } catch (...) {
      failed_ = true;
      throw;
    }
  }

  void close() override {
    if (closed_) return;
    closed_ = true;
    bool ok = !failed_;
    std::string error;
    if (ok) {
      try {
        drain(gzip_ ? Z_FINISH : Z_NO_FLUSH);
      } catch (const std::exception& e) {
        ok = false;
        error = e.what();
      }
    }
    if (gzip_) deflateEnd(&z_);
    if (owned_ && ::close(fd_) != 0 && ok) {
      ok = false;
      error = "close " + path_ + ": " + std::strerror(errno);
    }
    if (!error.empty()) throw std::runtime_error(error);
  }

  std::uint64_t size() const override { return on_disk_ + out_pending_ + buffer_.size(); }

 private:
  // The header line into header_, which keeps its capacity: no allocation per record.
  void format_header_line(const Message& m) {
    header_.clear();
    header_ += static_cast<char>('0' + static_cast<int>(m.kind));
    header_ += ' ';
    header_ += m.id;
    char number[24];
    header_ += ' ';
    header_.append(number, std::to_chars(number, number + sizeof number, m.timestamp_ns).ptr);
    header_ += ' ';
    header_.append(number, std::to_chars(number, number + sizeof number, m.latency_ns).ptr);
    header_ += '\n';
  }

  void check() const {
    if (closed_) throw std::runtime_error("write to closed file " + path_);
    if (failed_) throw std::runtime_error("earlier write to " + path_ + " failed");
  }

  void append(const char* data, std::size_t size) {
    if (gzip_) {  // zlib buffers by itself; feeding it directly keeps size() close to the truth
      try {
        push(data, size, Z_NO_FLUSH);
      } catch (...) {
        failed_ = true;
        throw;
      }
      return;
    }
    if (buffer_.size() + size > capacity_) {
      try {
        drain(Z_NO_FLUSH);
        if (size >= capacity_) {  // a large payload goes straight through
          push(data, size, Z_NO_FLUSH);
          return;
        }
      } catch (...) {
        failed_ = true;
        throw;
      }
    }
    buffer_.insert(buffer_.end(), data, data + size);
  }

  // Hands our buffer (and, for gzip, zlib's pending output) to the OS.
  void drain(int flush_mode) {
    push(buffer_.data(), buffer_.size(), flush_mode);
    buffer_.clear();
  }

  void push(const char* data, std::size_t size, int flush_mode) {
    if (!gzip_) {
      write_all(fd_, data, size, path_);
      on_disk_ += size;
      return;
    }
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
    z_.avail_in = static_cast<uInt>(size);
    for (;;) {
      z_.next_out = reinterpret_cast<Bytef*>(out_.data() + out_pending_);
      z_.avail_out = static_cast<uInt>(out_.size() - out_pending_);
      int rc = deflate(&z_, flush_mode);
      if (rc == Z_STREAM_ERROR) throw std::runtime_error("gzip compression failed for " + path_);
      out_pending_ = out_.size() - z_.avail_out;
      bool full = z_.avail_out == 0;
      if (full || flush_mode != Z_NO_FLUSH) {
        write_all(fd_, out_.data(), out_pending_, path_);
        on_disk_ += out_pending_;
        out_pending_ = 0;
      }
      if (flush_mode == Z_FINISH ? rc == Z_STREAM_END : (z_.avail_in == 0 && !full)) break;
    }
  }

  int fd_;
  bool owned_;
  bool gzip_;
  bool closed_ = false;
  bool failed_ = false;
  std::size_t capacity_;
  std::vector<char> buffer_;
  std::string header_;
  std::vector<char> out_;  // compressed bytes not yet written
  std::size_t out_pending_ = 0;
  std::uint64_t on_disk_ = 0;
  z_stream z_{};
};

}  // namespace

std::unique_ptr<RecordWriter> RecordWriter::open_file(const std::string& path, bool append, bool gzip,
                                                      std::size_t buffer_size) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) throw errno_error("open " + path);
  try {
    return std::make_unique<FileRecordWriter>(fd, true, gzip, std::max<std::size_t>(buffer_size, 4096), path);
  } catch (...) {
    ::close(fd);
    throw;
  }
}

std::unique_ptr<RecordWriter> RecordWriter::on_descriptor(int fd, std::size_t buffer_size) {
  return std::make_unique<FileRecordWriter>(fd, false, false, std::max<std::size_t>(buffer_size, 4096),
                                            "fd " + std::to_string(fd));
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
  return 1 + 1 + m.id.size() + 1 + digits(m.timestamp_ns) + 1 + digits(m.latency_ns) + 1 + m.payload.size() +
         kSeparator.size();
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
