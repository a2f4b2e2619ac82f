#pragma once
// Link layer -> IP -> TCP: finds the TCP segment in one captured frame. Pure function of the
// bytes; never reads past `caplen`, and says why a frame is not a usable segment.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace doppel::plugins::raw {

// Link-layer types as pcap_datalink() reports them (DLT_* values on Linux).
namespace link {
inline constexpr int null_bsd = 0;      // DLT_NULL: 4-byte address family, host byte order
inline constexpr int ethernet = 1;      // DLT_EN10MB
inline constexpr int raw = 12;          // DLT_RAW on Linux
inline constexpr int raw_openbsd = 14;  // DLT_RAW elsewhere
inline constexpr int loop = 108;        // DLT_LOOP: 4-byte address family, network byte order
inline constexpr int linux_sll = 113;   // cooked v1, what "any" gives on older libpcap
inline constexpr int raw_linktype = 101;
inline constexpr int ipv4 = 228;
inline constexpr int ipv6 = 229;
inline constexpr int linux_sll2 = 276;  // cooked v2, what "any" gives on libpcap >= 1.10
}  // namespace link

bool link_type_supported(int link_type);

struct IpAddress {
  std::uint8_t family = 0;  // 4 or 6
  std::uint8_t bytes[16] = {};
  // Inline with fixed sizes: the compiler turns it into two word compares (hot per packet).
  bool operator==(const IpAddress& o) const {
    if (family != o.family) return false;
    return family == 4 ? std::memcmp(bytes, o.bytes, 4) == 0 : std::memcmp(bytes, o.bytes, 16) == 0;
  }
  std::string to_string() const;  // "127.0.0.1", "::1"
};

namespace tcp_flag {
inline constexpr std::uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10;
}

struct TcpSegment {
  IpAddress source, destination;
  std::uint16_t source_port = 0, destination_port = 0;
  std::uint32_t seq = 0, ack = 0;
  std::uint8_t flags = 0;
  std::string_view payload;     // the payload bytes that were captured
  std::uint32_t missing = 0;    // payload bytes on the wire but cut off by snaplen
};

enum class DecodeStatus {
  tcp,             // `segment` is filled
  not_tcp,         // another protocol (ARP, UDP, ICMP, ...): ignored
  fragment,        // an IP fragment: TCP over fragmented IP is not reassembled
  truncated,       // the headers themselves were cut off by snaplen
  malformed,       // bogus version, header length or total length
  unsupported_link,
};
std::string_view decode_status_name(DecodeStatus status);

// `caplen` bytes of `data` were captured out of `wirelen` on the wire.
DecodeStatus decode_packet(int link_type, const std::uint8_t* data, std::size_t caplen, std::size_t wirelen,
                           TcpSegment& segment);

}  // namespace doppel::plugins::raw
