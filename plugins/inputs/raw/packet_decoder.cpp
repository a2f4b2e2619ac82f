#include "packet_decoder.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace doppel::plugins::raw {
namespace {

constexpr std::uint16_t kEtherIpv4 = 0x0800, kEtherIpv6 = 0x86dd, kEtherVlan = 0x8100, kEtherQinQ = 0x88a8,
                        kEtherVlan9100 = 0x9100, kEtherPppoeDiscovery = 0x8863, kEtherPppoeSession = 0x8864,
                        kEtherMpls = 0x8847, kEtherMplsMulticast = 0x8848, kEtherBridged = 0x6558,
                        kEtherMacsec = 0x88e5, kEtherPbb = 0x88e7, kEtherNsh = 0x894f;
constexpr std::uint16_t kPppIpv4 = 0x0021, kPppIpv6 = 0x0057;
constexpr std::uint8_t kIpTcp = 6, kIpUdp = 17, kIpGre = 47, kIpInIp = 4, kIpv6InIp = 41;

std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

// Bytes of one layer: what was captured and what the wire carried.
struct Layer {
  const std::uint8_t* data;
  std::size_t captured;
  std::size_t wire;
};

Layer skip(Layer l, std::size_t n) { return {l.data + n, l.captured - n, l.wire - n}; }

// A header of `n` bytes is needed: was it on the wire, and was it captured?
inline bool short_of(Layer l, std::size_t n, DecodeStatus& status) {
  if (l.captured >= n) return false;
  status = l.wire < n ? DecodeStatus::malformed : DecodeStatus::truncated;
  return true;
}

DecodeStatus skipped(TcpSegment& out, TcpSegment::Skip why) {
  out.skip = why;
  return DecodeStatus::not_tcp;
}

// The slow paths, out of line so that plain Ethernet/IPv4/TCP stays as small as it was.
// `tunnels`: how many tunnels (VXLAN, GRE, IP-in-IP) this layer is inside.
[[gnu::noinline]] DecodeStatus decode_ethertype(std::uint16_t type, Layer l, TcpSegment& out, int tunnels);
[[gnu::noinline]] DecodeStatus decode_ip_payload(std::uint8_t protocol, Layer l4, TcpSegment& out, int tunnels);

[[gnu::always_inline]] inline DecodeStatus decode_tcp(Layer l4, TcpSegment& out) {
  // l4.wire is the TCP length the IP header declares.
  if (l4.wire < 20) return DecodeStatus::malformed;
  if (l4.captured < 20) return DecodeStatus::truncated;
  std::size_t header = static_cast<std::size_t>(l4.data[12] >> 4) * 4;
  if (header < 20 || header > l4.wire) return DecodeStatus::malformed;
  if (header > l4.captured) return DecodeStatus::truncated;
  out.source_port = be16(l4.data);
  out.destination_port = be16(l4.data + 2);
  out.seq = be32(l4.data + 4);
  out.ack = be32(l4.data + 8);
  out.flags = l4.data[13];
  std::size_t payload_wire = l4.wire - header;
  std::size_t payload_captured = l4.captured - header;
  if (payload_captured > payload_wire) payload_captured = payload_wire;
  out.payload = std::string_view(reinterpret_cast<const char*>(l4.data + header), payload_captured);
  out.missing = static_cast<std::uint32_t>(payload_wire - payload_captured);
  return DecodeStatus::tcp;
}

// `l3.wire` is what the link layer says is left of the frame: the IP total length may be
// smaller (Ethernet padding) but never larger.
[[gnu::always_inline]] inline DecodeStatus decode_ipv4(Layer l3, TcpSegment& out, int tunnels) {
  if (l3.captured < 20) return l3.wire < 20 ? DecodeStatus::malformed : DecodeStatus::truncated;
  const std::uint8_t* p = l3.data;
  if ((p[0] >> 4) != 4) return DecodeStatus::malformed;
  std::size_t header = static_cast<std::size_t>(p[0] & 0x0f) * 4;
  std::size_t total = be16(p + 2);
  if (header < 20 || total < header || total > l3.wire) return DecodeStatus::malformed;
  if (header > l3.captured) return DecodeStatus::truncated;
  std::uint16_t fragment = be16(p + 6);
  if ((fragment & 0x3fff) != 0) return DecodeStatus::fragment;  // MF set or an offset
  std::size_t captured = l3.captured < total ? l3.captured : total;
  if (p[9] != kIpTcp) [[unlikely]]
    return decode_ip_payload(p[9], {p + header, captured - header, total - header}, out, tunnels);
  out.source.family = out.destination.family = 4;
  std::memset(out.source.bytes, 0, 16);
  std::memset(out.destination.bytes, 0, 16);
  std::memcpy(out.source.bytes, p + 12, 4);
  std::memcpy(out.destination.bytes, p + 16, 4);
  return decode_tcp({p + header, captured - header, total - header}, out);
}

DecodeStatus decode_ipv6(Layer l3, TcpSegment& out, int tunnels) {
  if (l3.captured < 40) return l3.wire < 40 ? DecodeStatus::malformed : DecodeStatus::truncated;
  const std::uint8_t* p = l3.data;
  if ((p[0] >> 4) != 6) return DecodeStatus::malformed;
  std::size_t total = 40 + std::size_t{be16(p + 4)};
  if (total == 40 || total > l3.wire) return DecodeStatus::malformed;  // 0: jumbogram, not on a capture
  std::size_t captured = l3.captured < total ? l3.captured : total;
  std::uint8_t next = p[6];
  std::size_t offset = 40;
  // Extension headers before TCP: hop-by-hop, routing, destination options, AH.
  auto extension = [](std::uint8_t header) { return header == 0 || header == 43 || header == 60 || header == 51; };
  for (int hops = 0; hops < 8 && extension(next); ++hops) {
    if (offset + 8 > total) return DecodeStatus::malformed;
    if (offset + 8 > captured) return DecodeStatus::truncated;
    std::size_t length = next == 51 ? (std::size_t{p[offset + 1]} + 2) * 4 : (std::size_t{p[offset + 1]} + 1) * 8;
    next = p[offset];
    offset += length;
    if (offset > total) return DecodeStatus::malformed;
  }
  if (next == 44) return DecodeStatus::fragment;
  if (extension(next)) return DecodeStatus::not_tcp;  // more than 8 of them: not a real packet
  if (offset > captured) return DecodeStatus::truncated;
  if (next != kIpTcp) return decode_ip_payload(next, {p + offset, captured - offset, total - offset}, out, tunnels);
  out.source.family = out.destination.family = 6;
  std::memcpy(out.source.bytes, p + 8, 16);
  std::memcpy(out.destination.bytes, p + 24, 16);
  return decode_tcp({p + offset, captured - offset, total - offset}, out);
}

[[gnu::always_inline]] inline DecodeStatus decode_ethernet(Layer frame, TcpSegment& out, int tunnels) {
  if (frame.captured < 14) return frame.wire < 14 ? DecodeStatus::malformed : DecodeStatus::truncated;
  std::uint16_t type = be16(frame.data + 12);
  if (type == kEtherIpv4) [[likely]]
    return decode_ipv4(skip(frame, 14), out, tunnels);
  return decode_ethertype(type, skip(frame, 14), out, tunnels);
}

// After an ethertype (Ethernet, Linux cooked, GRE): tags, PPPoE and MPLS on the way to IP.
DecodeStatus decode_ethertype(std::uint16_t type, Layer l, TcpSegment& out, int tunnels) {
  DecodeStatus status;
  for (int tags = 0;;) {
    switch (type) {
      case kEtherIpv4: return decode_ipv4(l, out, tunnels);
      case kEtherIpv6: return decode_ipv6(l, out, tunnels);
      case kEtherVlan:
      case kEtherQinQ:
      case kEtherVlan9100:
        out.encapsulated = true;
        if (++tags > kMaxVlanTags) return skipped(out, TcpSegment::Skip::too_deep);
        if (short_of(l, 4, status)) return status;
        type = be16(l.data + 2);
        l = skip(l, 4);
        continue;
      case kEtherPppoeSession: {
        out.encapsulated = true;
        if (short_of(l, 8, status)) return status;
        if (l.data[0] != 0x11 || l.data[1] != 0) return DecodeStatus::malformed;  // version 1, type 1, code 0
        std::size_t length = be16(l.data + 4);  // the PPP protocol field and what follows
        if (length < 2 || length + 6 > l.wire) return DecodeStatus::malformed;
        std::uint16_t protocol = be16(l.data + 6);
        Layer ppp{l.data + 8, (l.captured < length + 6 ? l.captured : length + 6) - 8, length - 2};
        if (protocol == kPppIpv4) return decode_ipv4(ppp, out, tunnels);
        if (protocol == kPppIpv6) return decode_ipv6(ppp, out, tunnels);
        if (protocol >= 0x8000) return DecodeStatus::not_tcp;  // LCP, IPCP, ...: the link's own talk
        return skipped(out, TcpSegment::Skip::unsupported_encapsulation);
      }
      case kEtherPppoeDiscovery: return DecodeStatus::not_tcp;
      case kEtherMpls:
      case kEtherMplsMulticast: {
        out.encapsulated = true;
        for (int labels = 1;; ++labels) {
          if (labels > kMaxMplsLabels) return skipped(out, TcpSegment::Skip::too_deep);
          if (short_of(l, 4, status)) return status;
          bool bottom = (l.data[2] & 0x01) != 0;
          l = skip(l, 4);
          if (bottom) break;
        }
        // No protocol field: the IP version says (an Ethernet pseudowire starts otherwise).
        if (short_of(l, 1, status)) return status;
        if ((l.data[0] >> 4) == 4) return decode_ipv4(l, out, tunnels);
        if ((l.data[0] >> 4) == 6) return decode_ipv6(l, out, tunnels);
        return skipped(out, TcpSegment::Skip::unsupported_encapsulation);
      }
      case kEtherMacsec:
      case kEtherPbb:
      case kEtherNsh: return skipped(out, TcpSegment::Skip::unsupported_encapsulation);
      default: return DecodeStatus::not_tcp;  // ARP, LLDP, 802.3 length fields, ...
    }
  }
}

// An IP payload that is not TCP: a tunnel (VXLAN, GRE, IP in IP) is opened, the rest ignored.
DecodeStatus decode_ip_payload(std::uint8_t protocol, Layer l, TcpSegment& out, int tunnels) {
  DecodeStatus status;
  if (protocol == kIpUdp || protocol == kIpGre || protocol == kIpInIp || protocol == kIpv6InIp)
    out.encapsulated = true;
  switch (protocol) {
    case kIpUdp: {
      if (l.wire < 8) return DecodeStatus::malformed;
      if (l.captured < 4) return DecodeStatus::truncated;
      if (be16(l.data + 2) != kVxlanPort) return DecodeStatus::not_tcp;
      if (short_of(l, 16, status)) return status;  // UDP and VXLAN headers
      std::size_t length = be16(l.data + 4);
      if (length < 16 || length > l.wire) return DecodeStatus::malformed;
      if ((l.data[8] & 0x08) == 0) return skipped(out, TcpSegment::Skip::unsupported_encapsulation);  // no VNI
      if (++tunnels > kMaxTunnels) return skipped(out, TcpSegment::Skip::too_deep);
      return decode_ethernet({l.data + 16, (l.captured < length ? l.captured : length) - 16, length - 16}, out,
                             tunnels);
    }
    case kIpGre: {
      if (short_of(l, 4, status)) return status;
      std::uint16_t flags = be16(l.data);
      std::uint16_t type = be16(l.data + 2);
      // Routing present (RFC 1701) or version 1 (PPTP): not opened.
      if ((flags & 0x4007) != 0) return skipped(out, TcpSegment::Skip::unsupported_encapsulation);
      std::size_t header = 4 + ((flags & 0x8000) ? 4 : 0) + ((flags & 0x2000) ? 4 : 0) + ((flags & 0x1000) ? 4 : 0);
      if (short_of(l, header, status)) return status;
      if (++tunnels > kMaxTunnels) return skipped(out, TcpSegment::Skip::too_deep);
      if (type == kEtherBridged) return decode_ethernet(skip(l, header), out, tunnels);
      if (type == kEtherIpv4 || type == kEtherIpv6 || type == kEtherMpls || type == kEtherMplsMulticast)
        return decode_ethertype(type, skip(l, header), out, tunnels);
      return skipped(out, TcpSegment::Skip::unsupported_encapsulation);  // ERSPAN, PPP, ...
    }
    case kIpInIp:
      if (++tunnels > kMaxTunnels) return skipped(out, TcpSegment::Skip::too_deep);
      return decode_ipv4(l, out, tunnels);
    case kIpv6InIp:
      if (++tunnels > kMaxTunnels) return skipped(out, TcpSegment::Skip::too_deep);
      return decode_ipv6(l, out, tunnels);
    default: return DecodeStatus::not_tcp;  // ICMP, ESP, SCTP, ...
  }
}

// DLT_NFLOG: a 4-byte header (family, version, resource id), then TLVs whose length and type
// are in the capturing host's byte order, each padded to 4 bytes. The packet is TLV 9.
DecodeStatus decode_nflog(Layer frame, TcpSegment& out) {
  constexpr std::uint16_t kPayload = 9;
  // The payload is as much of the packet as the NFLOG rule copied: a shorter copy is like a
  // snaplen, so the IP header's own length is believed (up to the IPv6 maximum).
  constexpr std::size_t kLongestPacket = 40 + 65535;
  if (frame.captured < 4) return frame.wire < 4 ? DecodeStatus::malformed : DecodeStatus::truncated;
  std::size_t offset = 4;
  while (offset + 4 <= frame.captured) {
    std::uint16_t length, type;
    std::memcpy(&length, frame.data + offset, 2);
    std::memcpy(&type, frame.data + offset + 2, 2);
    if (length < 4) return DecodeStatus::malformed;
    if ((type & 0x3fff) == kPayload) {
      std::size_t end = offset + length;
      if (end > frame.wire) return DecodeStatus::malformed;
      Layer packet{frame.data + offset + 4, (end < frame.captured ? end : frame.captured) - offset - 4,
                   kLongestPacket};
      if (packet.captured == 0) return DecodeStatus::truncated;
      int version = packet.data[0] >> 4;
      if (version == 4) return decode_ipv4(packet, out, 0);
      if (version == 6) return decode_ipv6(packet, out, 0);
      return DecodeStatus::not_tcp;
    }
    offset += (std::size_t{length} + 3) & ~std::size_t{3};
  }
  return frame.captured < frame.wire ? DecodeStatus::truncated : DecodeStatus::not_tcp;
}

}  // namespace

std::string IpAddress::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (family == 4) return inet_ntop(AF_INET, bytes, text, sizeof text) ? text : "";
  if (family == 6) return inet_ntop(AF_INET6, bytes, text, sizeof text) ? text : "";
  return "";
}

bool link_type_supported(int link_type) {
  switch (link_type) {
    case link::null_bsd: case link::ethernet: case link::raw: case link::raw_openbsd: case link::loop:
    case link::linux_sll: case link::raw_linktype: case link::ipv4: case link::ipv6: case link::linux_sll2:
    case link::nflog:
      return true;
    default:
      return false;
  }
}

std::string supported_link_type_names() {
  return "EN10MB (Ethernet), LINUX_SLL and LINUX_SLL2 (Linux cooked, interface \"any\"), NULL, LOOP, RAW, "
         "IPV4, IPV6, NFLOG";
}

std::string_view skip_name(TcpSegment::Skip skip) {
  switch (skip) {
    case TcpSegment::Skip::none: return "none";
    case TcpSegment::Skip::unsupported_encapsulation: return "unsupported_encapsulation";
    case TcpSegment::Skip::too_deep: return "too_deep";
  }
  return "unknown";
}

std::string_view decode_status_name(DecodeStatus status) {
  switch (status) {
    case DecodeStatus::tcp: return "tcp";
    case DecodeStatus::not_tcp: return "not_tcp";
    case DecodeStatus::fragment: return "fragment";
    case DecodeStatus::truncated: return "truncated";
    case DecodeStatus::malformed: return "malformed";
    case DecodeStatus::unsupported_link: return "unsupported_link";
  }
  return "unknown";
}

DecodeStatus decode_packet(int link_type, const std::uint8_t* data, std::size_t caplen, std::size_t wirelen,
                           TcpSegment& out) {
  if (caplen > wirelen) wirelen = caplen;  // a writer that set len < caplen: trust what we hold
  Layer frame{data, caplen, wirelen};
  out.skip = TcpSegment::Skip::none;
  out.encapsulated = false;
  auto need = [&](std::size_t n) { return frame.captured >= n; };
  switch (link_type) {
    case link::ethernet: return decode_ethernet(frame, out, 0);
    case link::linux_sll: {
      if (!need(16)) return frame.wire < 16 ? DecodeStatus::malformed : DecodeStatus::truncated;
      std::uint16_t type = be16(data + 14);
      if (type == kEtherIpv4) return decode_ipv4(skip(frame, 16), out, 0);
      // The kernel leaves a tag in place when it cannot strip it: decode_ethertype opens it.
      return decode_ethertype(type, skip(frame, 16), out, 0);
    }
    case link::linux_sll2: {
      if (!need(20)) return frame.wire < 20 ? DecodeStatus::malformed : DecodeStatus::truncated;
      std::uint16_t type = be16(data);
      if (type == kEtherIpv4) return decode_ipv4(skip(frame, 20), out, 0);
      return decode_ethertype(type, skip(frame, 20), out, 0);
    }
    case link::null_bsd:
    case link::loop: {
      if (!need(4)) return frame.wire < 4 ? DecodeStatus::malformed : DecodeStatus::truncated;
      std::uint32_t family;
      if (link_type == link::loop) {
        family = be32(data);
      } else {
        std::memcpy(&family, data, 4);
        // Written on a host of the other byte order: the value lands in the top byte.
        if (family > 0xffff) family = __builtin_bswap32(family);
      }
      if (family == 2) return decode_ipv4(skip(frame, 4), out, 0);
      if (family == 24 || family == 28 || family == 30 || family == 10) return decode_ipv6(skip(frame, 4), out, 0);
      return DecodeStatus::not_tcp;
    }
    case link::raw:
    case link::raw_openbsd:
    case link::raw_linktype:
    case link::ipv4:
    case link::ipv6: {
      if (!need(1)) return DecodeStatus::malformed;
      int version = data[0] >> 4;
      if (version == 4) return decode_ipv4(frame, out, 0);
      if (version == 6) return decode_ipv6(frame, out, 0);
      return DecodeStatus::malformed;
    }
    case link::nflog: return decode_nflog(frame, out);
    default:
      return DecodeStatus::unsupported_link;
  }
}

}  // namespace doppel::plugins::raw
