#pragma once
// Reading a capture file frame by frame. A classic pcap file as tcpdump writes it (version
// 2.4, this host's byte order) is mapped into memory once and walked in place: no copy, no
// system call per packet, and frames stay valid as long as the file is open. Anything else
// (pcapng, the other byte order, a pipe) is read by libpcap, through the handle that read its
// header, once.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

struct bpf_program;

namespace doppel::plugins::raw {

struct CapturedFrame {
  const std::uint8_t* data = nullptr;  // valid until the reader's next call
  std::uint32_t caplen = 0;            // bytes captured
  std::uint32_t wirelen = 0;           // bytes on the wire
  std::int64_t timestamp_ns = 0;
};

class CaptureFile {
 public:
  // Null when the file cannot be read as a capture; `error` then says why.
  static std::shared_ptr<const CaptureFile> open(const std::string& path, std::string& error);
  ~CaptureFile();
  CaptureFile(const CaptureFile&) = delete;
  CaptureFile& operator=(const CaptureFile&) = delete;

  int link_type() const { return link_type_; }  // DLT_* as pcap_datalink() gives it
  int snaplen() const { return snaplen_; }
  // Frames are read in place from a mapping (true), or by libpcap into a buffer it reuses at
  // each frame (false).
  bool mapped() const { return map_ != nullptr; }
  const std::string& path() const { return path_; }

  class Reader {
   public:
    // Why next() returned false before the end of the file.
    enum class Failure {
      none,
      truncated,  // the file ends inside a frame (a capture cut short, or still being written)
      corrupt,    // a record no reader can make sense of: the rest of the file cannot be walked
      io,         // the file could not be read (EIO, ...)
    };
    virtual ~Reader() = default;
    // The next frame: false at the end of the file, or on an error that error() describes.
    virtual bool next(CapturedFrame& frame) = 0;
    const std::string& error() const { return error_; }
    Failure failure() const { return failure_; }
    std::uint64_t frames() const { return frames_; }  // frames read so far
    // Where the failure is in the file: the start of the bad record, or how far reading got;
    // -1 when unknown (a pipe).
    std::int64_t failure_offset() const { return failure_offset_; }

   protected:
    std::string error_;
    Failure failure_ = Failure::none;
    std::uint64_t frames_ = 0;
    std::int64_t failure_offset_ = -1;
  };
  // A reader from the first frame on; it must not outlive the file. A mapped file gives as
  // many as asked for, one read by libpcap only one (null after that, `error` says why).
  std::unique_ptr<Reader> reader(std::string& error) const;

 private:
  friend class FrameFilter;
  CaptureFile() = default;
  std::string path_;
  int link_type_ = 0;
  int snaplen_ = 0;
  // The libpcap handle that read the header (pcap_t*): filters compile against it, and a file
  // that is not mapped is read through it.
  void* handle_ = nullptr;
  mutable bool handle_reading_ = false;
  // The classic pcap mapping, null for libpcap reading.
  const std::uint8_t* map_ = nullptr;
  std::size_t size_ = 0;
  bool nanoseconds_ = false;  // timestamps in ns instead of us
};

// Why `path` cannot be read as a capture, from its header alone (the frames are not read):
// unreadable, a directory, empty, not a pcap or pcapng file (named by its first bytes), a header
// libpcap refuses, or a link type doppel does not decode. nullopt when it can be read, and for
// what is not a regular file (a pipe's bytes are read once, by the capture).
std::optional<std::string> capture_file_problem(const std::string& path);

// A compiled BPF filter applied to frames in user space (what libpcap does for files).
// Thread-safe once built.
class FrameFilter {
 public:
  // Compiled for `file` as libpcap compiles for a file: e.g. on the NULL link type, `ip6`
  // matches the address family numbers of every system that writes it, not only Linux's.
  // Empty `expression` matches everything. Throws std::runtime_error when it does not compile.
  FrameFilter(const CaptureFile& file, const std::string& expression);
  ~FrameFilter();
  FrameFilter(const FrameFilter&) = delete;
  FrameFilter& operator=(const FrameFilter&) = delete;
  bool matches(const CapturedFrame& frame) const;

 private:
  std::unique_ptr<bpf_program> program_;
};

}  // namespace doppel::plugins::raw
