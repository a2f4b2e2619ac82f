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
inline constexpr int nflog = 239;       // Linux NFLOG: TLVs in host byte order, the packet in TLV 9
inline constexpr int linux_sll2 = 276;  // cooked v2, what "any" gives on libpcap >= 1.10
}  // namespace link

bool link_type_supported(int link_type);
// "EN10MB, LINUX_SLL, ...": the link types link_type_supported() accepts, for messages.
std::string supported_link_type_names();

// Bounds on nesting: more 802.1Q/802.1ad tags, MPLS labels or tunnels inside tunnels than this
// is `too_deep` (and the generated filter stops looking there too).
inline constexpr int kMaxVlanTags = 8;
inline constexpr int kMaxMplsLabels = 8;
inline constexpr int kMaxTunnels = 2;
inline constexpr std::uint16_t kVxlanPort = 4789;

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
  // Why the frame was set aside, finer than its DecodeStatus: set by decode_packet whenever
  // the status is not `tcp` (it stays as it was on a `tcp` frame).
  enum class Skip : std::uint8_t {
    none,                       // the status says it all
    unsupported_encapsulation,  // status not_tcp: a tunnel or framing doppel does not open
    too_deep,                   // status not_tcp: more tags, labels or nested tunnels than the bounds
  } skip = Skip::none;
  // Found behind a VLAN tag, PPPoE, MPLS or a tunnel: the generated capture filter tests such
  // segments only in part in BPF, and again once decoded.
  bool encapsulated = false;
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
std::string_view skip_name(TcpSegment::Skip skip);  // "unsupported_encapsulation", "too_deep"

// `caplen` bytes of `data` were captured out of `wirelen` on the wire. Opens 802.1Q/802.1ad
// tags, MPLS label stacks, PPPoE sessions, VXLAN (UDP 4789), GRE, IP-in-IP and IPv6
// extension headers on the way to TCP.
DecodeStatus decode_packet(int link_type, const std::uint8_t* data, std::size_t caplen, std::size_t wirelen,
                           TcpSegment& segment);

}  // namespace doppel::plugins::raw
