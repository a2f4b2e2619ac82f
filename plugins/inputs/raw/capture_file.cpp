#include "capture_file.hpp"

#include <fcntl.h>
#include <pcap/pcap.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "packet_decoder.hpp"

namespace doppel::plugins::raw {
namespace {

// Classic pcap: a 24-byte file header, then per frame a 16-byte record header and the bytes.
constexpr std::size_t kFileHeader = 24;
constexpr std::size_t kRecordHeader = 16;
constexpr std::uint32_t kMagicMicro = 0xa1b2c3d4, kMagicNano = 0xa1b23c4d;
// libpcap refuses records larger than this for every link type doppel decodes.
constexpr std::uint32_t kMaxRecord = 262144;

std::uint32_t load32(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
std::uint16_t load16(const std::uint8_t* p) {
  std::uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The magic numbers libpcap reads, as the first four bytes of the file read in either byte
// order: pcap with micro- or nanosecond timestamps, pcap with Kuznetzov's patch, and pcapng.
bool capture_magic(std::uint32_t magic) {
  for (std::uint32_t known : {kMagicMicro, kMagicNano, 0xa1b2cd34u, 0x0a0d0d0au})
    if (magic == known || magic == __builtin_bswap32(known)) return true;
  return false;
}

class MappedReader final : public CaptureFile::Reader {
 public:
  MappedReader(const std::uint8_t* map, std::size_t size, bool nanoseconds, std::uint32_t snaplen)
      : map_(map), size_(size), nanoseconds_(nanoseconds), snaplen_(snaplen) {}

  bool next(CapturedFrame& frame) override {
    if (offset_ >= size_) return false;
    std::size_t left = size_ - offset_;
    if (left < kRecordHeader)
      return fail(Failure::truncated,
                  "truncated capture file: the record header at byte " + std::to_string(offset_) + " is cut off");
    const std::uint8_t* record = map_ + offset_;
    // Both halves of the timestamp are signed 32-bit numbers, as libpcap reads them.
    auto seconds = static_cast<std::int32_t>(load32(record));
    auto fraction = static_cast<std::int32_t>(load32(record + 4));
    std::uint32_t caplen = load32(record + 8);
    std::uint32_t wirelen = load32(record + 12);
    if (caplen > kMaxRecord)
      return fail(Failure::corrupt, "bogus record at byte " + std::to_string(offset_) + " of the capture file: " +
                  std::to_string(caplen) + " bytes captured, more than the maximum of " + std::to_string(kMaxRecord));
    if (left - kRecordHeader < caplen)
      return fail(Failure::truncated, "truncated capture file: the record at byte " + std::to_string(offset_) +
                                          " holds " + std::to_string(caplen) + " bytes, " +
                                          std::to_string(left - kRecordHeader) + " are left");
    frame.data = record + kRecordHeader;
    // Like libpcap: a record longer than the file's snaplen is read, then cut to it.
    frame.caplen = caplen > snaplen_ ? snaplen_ : caplen;
    frame.wirelen = wirelen;
    frame.timestamp_ns = static_cast<std::int64_t>(seconds) * 1'000'000'000 +
                         (nanoseconds_ ? fraction : static_cast<std::int64_t>(fraction) * 1000);
    offset_ += kRecordHeader + caplen;
    ++frames_;
    return true;
  }

 private:
  bool fail(Failure failure, std::string why) {
    error_ = std::move(why);
    failure_ = failure;
    failure_offset_ = static_cast<std::int64_t>(offset_);
    offset_ = size_;
    return false;
  }

  const std::uint8_t* map_;
  std::size_t size_;
  std::size_t offset_ = kFileHeader;
  bool nanoseconds_;
  std::uint32_t snaplen_;
};

class LibpcapReader final : public CaptureFile::Reader {
 public:
  explicit LibpcapReader(pcap_t* handle) : handle_(handle) {}  // the file's, which it closes

  bool next(CapturedFrame& frame) override {
    pcap_pkthdr* header = nullptr;
    const u_char* data = nullptr;
    int status = pcap_next_ex(handle_, &header, &data);
    if (status == 1) {
      frame.data = data;
      frame.caplen = header->caplen;
      frame.wirelen = header->len;
      // Opened with nanosecond precision: tv_usec holds nanoseconds.
      frame.timestamp_ns = static_cast<std::int64_t>(header->ts.tv_sec) * 1'000'000'000 + header->ts.tv_usec;
      ++frames_;
      return true;
    }
    if (status == -1) {
      error_ = pcap_geterr(handle_);
      // libpcap tells these apart only in its words: "truncated dump file; tried to read ...",
      // "truncated pcapng dump file; ...", "error reading dump file: <strerror>".
      FILE* file = pcap_file(handle_);
      if (error_.starts_with("truncated")) failure_ = Failure::truncated;
      else if (error_.starts_with("error reading") || (file != nullptr && std::ferror(file))) failure_ = Failure::io;
      else failure_ = Failure::corrupt;
      failure_offset_ = file != nullptr ? std::ftell(file) : -1;  // how far it got; -1 on a pipe
    }
    return false;
  }

 private:
  pcap_t* handle_;
};

pcap_t* open_with_libpcap(const std::string& path, std::string& error) {
  char message[PCAP_ERRBUF_SIZE] = {};
  pcap_t* handle = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, message);
  if (handle == nullptr) error = message;
  return handle;
}

}  // namespace

std::shared_ptr<const CaptureFile> CaptureFile::open(const std::string& path, std::string& error) {
  // libpcap reads the header either way: it validates it and maps the link type to a DLT.
  pcap_t* handle = open_with_libpcap(path, error);
  if (handle == nullptr) return nullptr;
  std::shared_ptr<CaptureFile> file(new CaptureFile());
  file->path_ = path;
  file->handle_ = handle;
  file->link_type_ = pcap_datalink(handle);
  file->snaplen_ = pcap_snapshot(handle);

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st{};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) ::close(fd);
    return file;  // a pipe: read by libpcap
  }
  // Mapped: what tcpdump writes, pcap 2.4 in this host's byte order. Everything else goes
  // through libpcap, which knows its quirks: lengths swapped before 2.4, pseudo-headers
  // rewritten when the byte order differs, other magic numbers.
  std::uint8_t header[kFileHeader];
  bool plain = false;
  if (static_cast<std::size_t>(st.st_size) >= kFileHeader && ::pread(fd, header, sizeof header, 0) == kFileHeader) {
    std::uint32_t magic = load32(header);
    // The record bound below is libpcap's for the link types doppel decodes, not for all.
    plain = (magic == kMagicMicro || magic == kMagicNano) && load16(header + 4) == 2 && load16(header + 6) == 4 &&
            link_type_supported(file->link_type_);
    file->nanoseconds_ = magic == kMagicNano;
  }
  if (plain) {
    void* map = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (map != MAP_FAILED) {
      ::madvise(map, static_cast<std::size_t>(st.st_size), MADV_SEQUENTIAL);
      file->map_ = static_cast<const std::uint8_t*>(map);
      file->size_ = static_cast<std::size_t>(st.st_size);
    }
  }
  ::close(fd);
  return file;
}

CaptureFile::~CaptureFile() {
  pcap_close(static_cast<pcap_t*>(handle_));
  if (map_ != nullptr) ::munmap(const_cast<std::uint8_t*>(map_), size_);
}

std::unique_ptr<CaptureFile::Reader> CaptureFile::reader(std::string& error) const {
  if (map_ != nullptr)
    return std::make_unique<MappedReader>(map_, size_, nanoseconds_, static_cast<std::uint32_t>(snaplen_));
  if (handle_reading_) {
    error = "\"" + path_ + "\" is already being read";
    return nullptr;
  }
  handle_reading_ = true;
  return std::make_unique<LibpcapReader>(static_cast<pcap_t*>(handle_));
}

std::optional<std::string> capture_file_problem(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "cannot read capture file \"" + path + "\": " + std::strerror(errno);
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    bool directory = S_ISDIR(st.st_mode);
    ::close(fd);
    if (directory) return "\"" + path + "\" is a directory, not a capture file";
    return std::nullopt;  // a pipe or a device: what it holds is known only once it is read
  }
  std::uint8_t start[4] = {};
  ssize_t got = ::pread(fd, start, sizeof start, 0);
  ::close(fd);
  if (got < 0) return "cannot read capture file \"" + path + "\": " + std::strerror(errno);
  if (st.st_size == 0) return "file " + path + " is empty (a pcap or pcapng capture starts with a file header)";
  std::uint32_t magic = static_cast<std::uint32_t>(start[0]) << 24 | static_cast<std::uint32_t>(start[1]) << 16 |
                        static_cast<std::uint32_t>(start[2]) << 8 | start[3];
  if (got < 4 || !capture_magic(magic)) {
    char hex[16];
    std::string shown;
    for (ssize_t i = 0; i < got; ++i) {
      std::snprintf(hex, sizeof hex, "%02x", start[i]);
      shown += hex;
    }
    std::string hint;
    if (got >= 2 && start[0] == 0x1f && start[1] == 0x8b) hint = "; it is gzip-compressed: decompress it first";
    else if (got >= 2 && start[0] >= '1' && start[0] <= '4' && start[1] == ' ')
      hint = "; it looks like a GoReplay .gor file: read it with the `file` input";
    return "file " + path + ": not a pcap or pcapng file (starts with 0x" + shown + hint + ")";
  }
  // The magic is right: libpcap checks the rest of the header (version, snaplen, link type).
  char message[PCAP_ERRBUF_SIZE] = {};
  pcap_t* handle = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, message);
  if (handle == nullptr) return "file " + path + ": " + message;
  int link_type = pcap_datalink(handle);
  pcap_close(handle);
  if (!link_type_supported(link_type)) {
    const char* name = pcap_datalink_val_to_name(link_type);
    std::string dlt = "DLT " + std::to_string(link_type);
    return "file " + path + ": its link type " + (name != nullptr ? std::string(name) + " (" + dlt + ")" : dlt) +
           " is not one doppel decodes (" + supported_link_type_names() + ")";
  }
  return std::nullopt;
}

FrameFilter::FrameFilter(const CaptureFile& file, const std::string& expression) {
  if (expression.empty()) return;
  // Compiled against the file's own handle (compiling reads nothing from it): libpcap
  // compiles for a savefile otherwise than for a handle of no file.
  auto* handle = static_cast<pcap_t*>(file.handle_);
  auto program = std::make_unique<bpf_program>();
  if (pcap_compile(handle, program.get(), expression.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
    throw std::runtime_error(pcap_geterr(handle));
  program_ = std::move(program);
}

FrameFilter::~FrameFilter() {
  if (program_) pcap_freecode(program_.get());
}

bool FrameFilter::matches(const CapturedFrame& frame) const {
  if (!program_) return true;
  pcap_pkthdr header{};
  header.caplen = frame.caplen;
  header.len = frame.wirelen;
  return pcap_offline_filter(program_.get(), &header, frame.data) != 0;
}

}  // namespace doppel::plugins::raw
