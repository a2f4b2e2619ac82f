// libFuzzer: any bytes as a frame of any supported link type, any caplen/wirelen split.
#include <cstddef>
#include <cstdint>

#include "packet_decoder.hpp"

using namespace doppel::plugins::raw;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const int kLinks[] = {link::null_bsd, link::ethernet, link::raw,       link::loop,
                               link::linux_sll, link::linux_sll2, link::ipv4, link::ipv6};
  if (size < 2) return 0;
  int link_type = kLinks[data[0] % (sizeof kLinks / sizeof kLinks[0])];
  std::size_t extra = data[1];  // wire length beyond what was captured (snaplen cuts)
  TcpSegment segment;
  if (decode_packet(link_type, data + 2, size - 2, size - 2 + extra, segment) == DecodeStatus::tcp) {
    // The payload view must lie inside the captured bytes.
    const auto* begin = reinterpret_cast<const char*>(data + 2);
    if (segment.payload.data() < begin || segment.payload.data() + segment.payload.size() > begin + size - 2)
      __builtin_trap();
  }
  return 0;
}
