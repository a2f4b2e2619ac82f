// libFuzzer: any bytes as a .gor file. The RecordReader reads it four ways: with the smallest
// buffer (records straddle refills), with a large one, gzip-compressed, and with a small record
// bound (max_payload_size taken from the last byte). The first three must split the file into
// the same records at the same offsets, each exactly the file's bytes between two separators;
// under the small bound a record is either the same or skipped as too_large, with its size and
// first bytes right. probe_file must read the first record's header as parse_header does, and
// what parse_record accepts must come back unchanged through format_record (the file output
// writes what the file input read).
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "doppel/gor.hpp"
#include "doppel/gor_stream.hpp"

using doppel::gor::RecordReader;
using Status = RecordReader::Status;

namespace {

// Above any input (-max_len=65536): the reference reads never skip a record.
constexpr std::size_t kNoBound = 1 << 17;

struct Read {
  Status status;
  std::string bytes;
  std::uint64_t offset;
  std::uint64_t size;
  bool operator==(const Read&) const = default;
};

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "%s\n", what);
  __builtin_trap();
}

// A file holding `bytes`, closed with the object; readers open it by path.
class MemoryFile {
 public:
  explicit MemoryFile(std::string_view bytes) : fd_(memfd_create("gor", MFD_CLOEXEC)) {
    if (fd_ >= 0 && !bytes.empty() && ::write(fd_, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~MemoryFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;
  bool ok() const { return fd_ >= 0; }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

std::vector<Read> read_all(const std::string& path, std::size_t buffer_size, std::size_t max_payload_size) {
  std::vector<Read> reads;
  RecordReader reader(path, buffer_size, max_payload_size);
  RecordReader::Record record;
  for (;;) {
    auto status = reader.next(record);
    reads.push_back({status, std::string(record.bytes), record.offset, record.size});
    if (status != Status::record && status != Status::too_large) break;
    if (reads.size() > 1'000'000) fail("a reader that never ends");
  }
  return reads;
}

std::string gzip(std::string_view bytes) {
  z_stream z{};
  // memLevel 1: the smallest state, since zlib zeroes it for every input.
  if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 1, Z_DEFAULT_STRATEGY) != Z_OK) __builtin_trap();
  std::string out(deflateBound(&z, bytes.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) __builtin_trap();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// Records (and skipped records) and separators tile the file: nothing lost, nothing invented.
void check_tiling(const std::vector<Read>& reads, std::string_view file) {
  std::uint64_t at = 0;
  for (const auto& r : reads) {
    if (r.offset != at) fail("a record does not start where the last one ended");
    if (r.status == Status::too_large) {
      if (r.bytes.size() > r.size || file.substr(at, r.bytes.size()) != r.bytes) fail("a skipped record's start is wrong");
    } else if (r.size != r.bytes.size() || file.substr(at, r.bytes.size()) != r.bytes) {
      fail("a record is not the file's bytes");
    }
    at += r.size;
    if (r.status == Status::record || (r.status == Status::too_large && at < file.size())) {
      if (file.substr(at, doppel::gor::kSeparator.size()) != doppel::gor::kSeparator) fail("no separator after a record");
      at += doppel::gor::kSeparator.size();
    } else if (r.status == Status::error || r.status == Status::damaged) {
      fail("a plain memory file read with an error");
    }
  }
  if (at != file.size()) fail("the records do not cover the file");
}

// Under a small bound: the same records, except those over it, skipped and counted whole.
void check_bounded(const std::vector<Read>& bounded, const std::vector<Read>& reference, std::size_t bound) {
  std::size_t j = 0;
  for (const auto& b : bounded) {
    while (j < reference.size() && reference[j].offset < b.offset) ++j;
    if (j == reference.size() || reference[j].offset != b.offset) {
      if (b.status == Status::end && b.bytes.empty()) continue;  // after a skipped last record
      fail("the bounded reader found a record the reference did not");
    }
    const Read& r = reference[j];
    if (b.status == Status::too_large) {
      if ((r.status != Status::record && r.status != Status::truncated) || r.size != b.size || b.size <= bound ||
          !std::string_view(r.bytes).starts_with(b.bytes))
        fail("a skipped record does not match the record it stands for");
    } else if (b != r) {
      fail("a record under the bound reads differently");
    } else if (r.size > bound + doppel::gor::kMaxHeaderLine) {
      fail("a record over the bound was kept");
    }
  }
}

void check_probe(const std::string& path, const std::vector<Read>& reads) {
  auto probe = doppel::gor::probe_file(path);
  if (probe.verdict == doppel::gor::FileProbe::Verdict::records) {
    const std::string& first = reads.front().bytes;
    auto header = doppel::gor::parse_header(std::string_view(first).substr(0, first.find('\n')));
    if (!probe.first || !header || header->kind != probe.first->kind || header->id != probe.first->id ||
        header->timestamp_ns != probe.first->timestamp_ns || header->latency_ns != probe.first->latency_ns)
      fail("probe_file read another first header");
  } else if (probe.problem.empty() != (probe.verdict == doppel::gor::FileProbe::Verdict::empty)) {
    fail("a file refused without a reason");
  }
}

void check_round_trip(std::string_view record) {
  auto message = doppel::gor::parse_record(record);
  if (!message) return;
  auto again = doppel::gor::parse_record(doppel::gor::format_record(*message));
  if (!again || again->kind != message->kind || again->id != message->id ||
      again->timestamp_ns != message->timestamp_ns || again->latency_ns != message->latency_ns ||
      again->payload != message->payload)
    fail("a record does not survive format_record");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  MemoryFile file(bytes);
  if (!file.ok()) return 0;
  auto small = read_all(file.path(), 0, kNoBound);  // the reader's smallest buffer
  if (read_all(file.path(), kNoBound, kNoBound) != small) fail("the buffer size changes what is read");
  check_probe(file.path(), small);

  bool read_as_gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  if (!read_as_gzip) {
    check_tiling(small, bytes);
    std::size_t bound = size > 0 ? 1 + std::size_t{data[size - 1]} * 64 : 1;
    auto bounded = read_all(file.path(), 0, bound);
    check_tiling(bounded, bytes);
    check_bounded(bounded, small, bound);
    MemoryFile compressed(gzip(bytes));
    if (compressed.ok() && read_all(compressed.path(), 0, kNoBound) != small) fail("the gzip file reads differently");
  }
  for (const auto& r : small) check_round_trip(r.bytes);
  return 0;
}
