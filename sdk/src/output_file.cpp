#include "doppel/output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <system_error>

#include "doppel/json_text.hpp"
#include "doppel/options.hpp"

namespace doppel {
namespace {

std::system_error os_error(int error, const std::string& what) {
  return std::system_error(error, std::generic_category(), what);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Creating files

std::optional<unsigned> parse_file_mode(std::string_view text) {
  if (text.starts_with("0o") || text.starts_with("0O")) text.remove_prefix(2);
  if (text.size() < 3 || text.size() > 4) return std::nullopt;
  unsigned mode = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return std::nullopt;
    mode = mode * 8 + static_cast<unsigned>(c - '0');
  }
  if (mode > 0777) return std::nullopt;  // no setuid, setgid or sticky bits on a capture
  return mode;
}

std::string format_file_mode(unsigned mode) {
  std::string out = "0";
  for (int shift = 6; shift >= 0; shift -= 3) out += static_cast<char>('0' + ((mode >> shift) & 7));
  return out;
}

OutputFilePolicy output_file_policy(const Options& options) {
  OutputFilePolicy policy;
  bool append = options.boolean("append");
  bool overwrite = options.boolean("overwrite");
  if (append && overwrite)
    options.fail("overwrite",
                 "append and overwrite exclude each other: append adds to an existing file, overwrite replaces it");
  policy.existing = append ? ExistingFile::append : overwrite ? ExistingFile::overwrite : ExistingFile::refuse;
  std::string mode_text = options.string("mode");
  auto mode = parse_file_mode(mode_text);
  if (!mode)
    options.fail("mode", "mode must be octal permission bits up to 0777, such as \"0600\" or \"0640\", not " +
                             json::quoted(mode_text.substr(0, 16)));
  policy.mode = *mode;
  return policy;
}

std::optional<std::string> output_path_problem(const std::string& path, const OutputFilePolicy& policy) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return std::nullopt;  // absent (or unreadable: open says why)
  if (S_ISLNK(st.st_mode))
    return path +
           " is a symbolic link; doppel never writes through a link at the final path component "
           "(remove the link, or write to another path)";
  if (S_ISDIR(st.st_mode)) return path + " is a directory";
  if (policy.existing == ExistingFile::refuse)
    return path + " already exists; set append = true to add to it, or overwrite = true to replace it";
  return std::nullopt;
}

int open_output_file(const std::string& path, const OutputFilePolicy& policy) {
  // Always O_APPEND: writes land at the end even after a failed write was truncated away.
  int flags = O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC;
  if (policy.existing == ExistingFile::refuse) flags |= O_EXCL;
  if (policy.existing == ExistingFile::overwrite) flags |= O_TRUNC;
  int fd = ::open(path.c_str(), flags, static_cast<mode_t>(policy.mode));
  if (fd >= 0) return fd;
  int error = errno;
  // O_NOFOLLOW fails with ELOOP on a link, O_EXCL with EEXIST on anything: say which.
  if (error == ELOOP || error == EEXIST || error == EISDIR)
    if (auto problem = output_path_problem(path, policy)) throw std::runtime_error(*problem);
  throw os_error(error, "cannot open " + path + " for writing");
}

void replace_file(const std::string& path, std::string_view content, unsigned mode) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  // A fresh, unpredictable name created with O_EXCL: nothing planted there can be written through.
  thread_local std::mt19937_64 random{std::random_device{}()};
  std::string temporary;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    char suffix[24];
    std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(random()));
    temporary = dir + "." + name + "." + suffix + ".tmp";
    fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, static_cast<mode_t>(mode));
    if (fd < 0 && (errno != EEXIST || attempt == 16))
      throw os_error(errno, "cannot create a temporary file beside " + path);
  }
  auto fail = [&](const std::string& what) {
    int error = errno;
    if (fd >= 0) ::close(fd);
    ::unlink(temporary.c_str());
    throw os_error(error, what);
  };
  const char* data = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      fail("write " + temporary);
    }
    data += n;
    left -= static_cast<std::size_t>(n);
  }
  // The content must be on disk before the name points at it, or a crash could leave an empty report.
  if (::fdatasync(fd) != 0 && errno != EINVAL) fail("fdatasync " + temporary);
  int closed = ::close(fd);
  fd = -1;
  if (closed != 0) fail("close " + temporary);
  if (::rename(temporary.c_str(), path.c_str()) != 0) fail("rename " + temporary + " to " + path);
}

// ---------------------------------------------------------------------------------------------
// Writing records

struct OutputFile::Gzip {
  z_stream z{};
  bool member_open = false;
  ~Gzip() { deflateEnd(&z); }
};

std::unique_ptr<OutputFile> OutputFile::open(const std::string& path, const OutputFilePolicy& policy, bool gzip,
                                             std::size_t buffer_size) {
  int fd = open_output_file(path, policy);
  try {
    return std::unique_ptr<OutputFile>(new OutputFile(fd, true, path, gzip, buffer_size));
  } catch (...) {
    ::close(fd);
    throw;
  }
}

std::unique_ptr<OutputFile> OutputFile::on_descriptor(int fd, std::string name, std::size_t buffer_size) {
  return std::unique_ptr<OutputFile>(new OutputFile(fd, false, std::move(name), false, buffer_size));
}

OutputFile::OutputFile(int fd, bool owned, std::string path, bool gzip, std::size_t buffer_size)
    : fd_(fd), owned_(owned), path_(std::move(path)), capacity_(std::max<std::size_t>(buffer_size, 4096)) {
  if (owned_) {
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) {
      truncatable_ = true;
      committed_ = static_cast<std::uint64_t>(st.st_size);
    }
  }
  if (gzip) {
    gzip_ = std::make_unique<Gzip>();
    // windowBits 15 + 16: a gzip wrapper, as `gzip` and GoReplay write.
    if (deflateInit2(&gzip_->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      gzip_.reset();  // (deflateEnd ignores a stream that never started)
      throw std::runtime_error("cannot start gzip compression for " + path_);
    }
    member_.resize(capacity_);
  } else {
    buffer_.reserve(capacity_);
  }
}

OutputFile::~OutputFile() {
  try {
    close();
  } catch (...) {
    // Destructors must not throw; what was lost is in progress(). close() explicitly to see errors.
  }
}

std::size_t OutputFile::add(std::initializer_list<std::string_view> pieces) {
  if (closed_) throw std::logic_error("write to closed file " + path_);
  std::size_t size = 0;
  for (auto piece : pieces) size += piece.size();
  if (broken_) throw_error(1);
  if (!(gzip_ ? add_gzip(pieces, size) : add_plain(pieces, size))) throw_error(0);
  return size;
}

bool OutputFile::add_plain(std::initializer_list<std::string_view> pieces, std::size_t size) {
  if (!buffer_.empty() && buffer_.size() + size > capacity_ && !write_batch()) {
    ++progress_.records_lost;  // this record: the disk is full, it would not fit either
    return false;
  }
  if (size < capacity_) {
    for (auto piece : pieces) buffer_.insert(buffer_.end(), piece.begin(), piece.end());
    record_ends_.push_back(buffer_.size());
    return true;
  }
  // One record larger than the buffer goes straight through (the buffer is empty here).
  bool ok = ready_to_write();
  for (auto piece = pieces.begin(); ok && piece != pieces.end(); ++piece)
    ok = write_out(piece->data(), piece->size()) == piece->size();
  if (!ok) {
    take_back();
    ++progress_.records_lost;
    return false;
  }
  committed_ += size;
  ++progress_.records_written;
  progress_.bytes_written += size;
  return true;
}

bool OutputFile::add_gzip(std::initializer_list<std::string_view> pieces, std::size_t size) {
  if (batch_records_ > 0 && batch_bytes_ + size > capacity_ && !write_batch()) {
    ++progress_.records_lost;
    return false;
  }
  if (!gzip_->member_open) {
    deflateReset(&gzip_->z);  // a new member, with its own gzip header and trailer
    gzip_->member_open = true;
  }
  for (auto piece : pieces) {
    if (!deflate_into_member(piece, Z_NO_FLUSH)) {
      lose_member(1);
      return false;
    }
  }
  ++batch_records_;
  batch_bytes_ += size;
  return true;
}

void OutputFile::flush(bool sync) {
  if (closed_ || broken_) return;  // broken: nothing is buffered (add() refuses records)
  if (!write_batch()) throw_error(0);
  if (sync && owned_ && ::fdatasync(fd_) != 0 && errno != EINVAL) throw os_error(errno, "fdatasync " + path_);
}

void OutputFile::close() {
  if (closed_) return;
  closed_ = true;
  bool ok = broken_ || write_batch();
  int error = error_;
  // An empty gzip file is not valid gzip: give it an empty member, as gzip and GoReplay do.
  if (ok && gzip_ && truncatable_ && committed_ == 0) {
    deflateReset(&gzip_->z);
    gzip_->member_open = true;
    ok = write_gzip_batch();
    error = error_;
  }
  gzip_.reset();
  if (owned_ && ::close(fd_) != 0 && ok) {
    ok = false;
    error = errno;
  }
  if (!ok) throw os_error(error != 0 ? error : EIO, "write " + path_);
}

std::uint64_t OutputFile::size() const {
  return committed_ + (gzip_ ? member_written_ + member_used_ : buffer_.size());
}

bool OutputFile::write_batch() { return gzip_ ? write_gzip_batch() : write_plain_batch(); }

bool OutputFile::write_plain_batch() {
  if (buffer_.empty()) return true;
  std::size_t written = ready_to_write() ? write_out(buffer_.data(), buffer_.size()) : 0;
  // Records wholly written stay; the rest (a partial record included) is taken back.
  std::size_t whole = static_cast<std::size_t>(std::upper_bound(record_ends_.begin(), record_ends_.end(), written) -
                                               record_ends_.begin());
  std::size_t kept = whole == 0 ? 0 : record_ends_[whole - 1];
  committed_ += kept;
  progress_.records_written += whole;
  progress_.bytes_written += kept;
  bool ok = written == buffer_.size();
  if (!ok) {
    progress_.records_lost += record_ends_.size() - whole;
    take_back();
  }
  buffer_.clear();
  record_ends_.clear();
  return ok;
}

bool OutputFile::write_gzip_batch() {
  if (!gzip_->member_open) return true;
  if (!deflate_into_member({}, Z_FINISH) || !write_member_part()) {
    lose_member(0);
    return false;
  }
  committed_ += member_written_;
  progress_.records_written += batch_records_;
  progress_.bytes_written += batch_bytes_;
  gzip_->member_open = false;
  member_written_ = 0;
  batch_records_ = batch_bytes_ = 0;
  return true;
}

bool OutputFile::deflate_into_member(std::string_view bytes, int flush_mode) {
  if (bytes.empty() && flush_mode == Z_NO_FLUSH) return true;  // (deflate would say Z_BUF_ERROR)
  z_stream& z = gzip_->z;
  while (true) {
    // zlib counts in 32 bits: feed a huge payload in slices.
    std::size_t slice = std::min<std::size_t>(bytes.size(), 1u << 30);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
    z.avail_in = static_cast<uInt>(slice);
    int mode = slice == bytes.size() ? flush_mode : Z_NO_FLUSH;
    for (;;) {
      z.next_out = reinterpret_cast<Bytef*>(member_.data() + member_used_);
      z.avail_out = static_cast<uInt>(member_.size() - member_used_);
      int rc = deflate(&z, mode);
      member_used_ = member_.size() - z.avail_out;
      if (rc == Z_STREAM_ERROR || (rc == Z_BUF_ERROR && z.avail_out > 0)) {
        error_ = EIO;
        return false;
      }
      if (z.avail_out == 0) {
        if (!write_member_part()) return false;
        continue;
      }
      if (mode == Z_FINISH ? rc == Z_STREAM_END : z.avail_in == 0) break;
    }
    bytes.remove_prefix(slice);
    if (bytes.empty()) return true;
  }
}

bool OutputFile::write_member_part() {
  if (!ready_to_write()) return false;
  std::size_t written = write_out(member_.data(), member_used_);
  member_written_ += written;
  bool ok = written == member_used_;
  member_used_ = 0;
  return ok;
}

void OutputFile::lose_member(std::uint64_t extra_records) {
  take_back();
  progress_.records_lost += batch_records_ + extra_records;
  gzip_->member_open = false;
  member_used_ = 0;
  member_written_ = 0;
  batch_records_ = batch_bytes_ = 0;
}

std::size_t OutputFile::write_out(const char* data, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd_, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = n == 0 ? EIO : errno;
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  return done;
}

bool OutputFile::ready_to_write() {
  if (untruncated_ && !take_back()) {
    error_ = errno;  // the file still ends in a partial record: writing after it would corrupt it
    return false;
  }
  return true;
}

bool OutputFile::take_back() {
  if (!truncatable_) {
    // Standard output, a pipe: what was written stays; nothing more can be written safely.
    broken_ = true;
    return false;
  }
  untruncated_ = ::ftruncate(fd_, static_cast<off_t>(committed_)) != 0;
  return !untruncated_;
}

void OutputFile::throw_error(std::uint64_t also_lost) {
  progress_.records_lost += also_lost;
  throw os_error(error_ != 0 ? error_ : EIO, "write " + path_);
}

}  // namespace doppel
