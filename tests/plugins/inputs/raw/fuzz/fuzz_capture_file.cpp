// libFuzzer: any bytes as a capture file. The mapped reader (classic pcap) must never read
// outside the file, must agree with libpcap on every frame it delivers and on where and why
// it stops, and two readers of one mapped file must see the same frames (a file libpcap reads
// gives one reader only); what they deliver is decoded and fed to a session.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

#include <pcap/pcap.h>

#include "capture_file.hpp"
#include "capture_session.hpp"

using namespace doppel::plugins::raw;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  int fd = memfd_create("capture", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (size > 0 && ::write(fd, data, size) != static_cast<ssize_t>(size)) {
    ::close(fd);
    return 0;
  }
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  std::string error;
  auto file = CaptureFile::open(path, error);
  if (file) {
    auto first = file->reader(error);
    auto second = file->reader(error);  // a mapped file gives several, one read by libpcap one
    // libpcap's own reading of the same bytes, frame by frame.
    char message[PCAP_ERRBUF_SIZE];
    pcap_t* reference = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, message);
    if (!first || !reference || (second != nullptr) != file->mapped()) __builtin_trap();
    CaptureSession session(CaptureConfig{}, CaptureSession::Emit([](doppel::Message&&) {}));
    CapturedFrame a, b;
    while (first->next(a)) {
      if (second && (!second->next(b) || a.caplen != b.caplen || a.wirelen != b.wirelen ||
                     a.timestamp_ns != b.timestamp_ns || std::memcmp(a.data, b.data, a.caplen) != 0))
        __builtin_trap();
      pcap_pkthdr* header = nullptr;
      const u_char* bytes = nullptr;
      // Opened with nanosecond precision: tv_usec holds nanoseconds.
      if (pcap_next_ex(reference, &header, &bytes) != 1 || header->caplen != a.caplen || header->len != a.wirelen ||
          static_cast<std::int64_t>(header->ts.tv_sec) * 1'000'000'000 + header->ts.tv_usec != a.timestamp_ns ||
          std::memcmp(bytes, a.data, a.caplen) != 0)
        __builtin_trap();
      session.add_frame(file->link_type(), a.data, a.caplen, a.wirelen, a.timestamp_ns);
    }
    // Both stop at the same place, and for the same kind of reason: the end, or an error.
    pcap_pkthdr* header = nullptr;
    const u_char* bytes = nullptr;
    int last = pcap_next_ex(reference, &header, &bytes);
    if (last != (first->error().empty() ? PCAP_ERROR_BREAK : PCAP_ERROR) || (second && second->next(b)))
      __builtin_trap();
    session.finish(0);
    pcap_close(reference);
  }
  ::close(fd);
  return 0;
}
