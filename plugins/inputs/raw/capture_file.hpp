#pragma once
// Reading a capture file frame by frame, by one reader or several at once (one per thread).
// A classic pcap file as tcpdump writes it (version 2.4, this host's byte order) is mapped
// into memory once and walked in place:
// no copy, no system call per packet, and every reader shares the mapping. Anything else
// libpcap reads (pcapng, a pipe) goes through libpcap, one handle per reader.
#include <cstddef>
#include <atomic>
#include <cstdint>
#include <memory>
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
  // Readers walk a shared mapping (true) or each open the file with libpcap (false); only a
  // regular file can be read by several readers, a pipe cannot.
  bool mapped() const { return map_ != nullptr; }
  const std::string& path() const { return path_; }

  class Reader {
   public:
    virtual ~Reader() = default;
    // The next frame: false at the end of the file, or on an error that error() describes.
    virtual bool next(CapturedFrame& frame) = 0;
    const std::string& error() const { return error_; }

   protected:
    std::string error_;
  };
  // A reader from the first frame on. Null when the file cannot be opened again (`error`).
  std::unique_ptr<Reader> reader(std::string& error) const;

 private:
  friend class FrameFilter;
  CaptureFile() = default;
  std::string path_;
  int link_type_ = 0;
  int snaplen_ = 0;
  bool rereadable_ = false;
  // The libpcap handle that read the header, for the first reader: a pipe is read only once.
  mutable std::atomic<void*> first_handle_{nullptr};
  // The classic pcap mapping, null for libpcap reading.
  const std::uint8_t* map_ = nullptr;
  std::size_t size_ = 0;
  bool nanoseconds_ = false;  // timestamps in ns instead of us
};

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
