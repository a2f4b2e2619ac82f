#include "packet_decoder.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace doppel::plugins::raw {
namespace {

constexpr std::uint16_t kEtherIpv4 = 0x0800, kEtherIpv6 = 0x86dd, kEtherVlan = 0x8100, kEtherQinQ = 0x88a8,
                        kEtherVlan9100 = 0x9100;

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
[[gnu::always_inline]] inline DecodeStatus decode_ipv4(Layer l3, TcpSegment& out) {
  if (l3.captured < 20) return l3.wire < 20 ? DecodeStatus::malformed : DecodeStatus::truncated;
  const std::uint8_t* p = l3.data;
  if ((p[0] >> 4) != 4) return DecodeStatus::malformed;
  std::size_t header = static_cast<std::size_t>(p[0] & 0x0f) * 4;
  std::size_t total = be16(p + 2);
  if (header < 20 || total < header || total > l3.wire) return DecodeStatus::malformed;
  if (header > l3.captured) return DecodeStatus::truncated;
  std::uint16_t fragment = be16(p + 6);
  if ((fragment & 0x3fff) != 0) return DecodeStatus::fragment;  // MF set or an offset
  if (p[9] != 6) return DecodeStatus::not_tcp;
  out.source.family = out.destination.family = 4;
  std::memset(out.source.bytes, 0, 16);
  std::memset(out.destination.bytes, 0, 16);
  std::memcpy(out.source.bytes, p + 12, 4);
  std::memcpy(out.destination.bytes, p + 16, 4);
  std::size_t captured = l3.captured < total ? l3.captured : total;
  return decode_tcp({p + header, captured - header, total - header}, out);
}

DecodeStatus decode_ipv6(Layer l3, TcpSegment& out) {
  if (l3.captured < 40) return l3.wire < 40 ? DecodeStatus::malformed : DecodeStatus::truncated;
  const std::uint8_t* p = l3.data;
  if ((p[0] >> 4) != 6) return DecodeStatus::malformed;
  std::size_t total = 40 + std::size_t{be16(p + 4)};
  if (total == 40 || total > l3.wire) return DecodeStatus::malformed;  // 0: jumbogram, not on a capture
  std::size_t captured = l3.captured < total ? l3.captured : total;
  std::uint8_t next = p[6];
  std::size_t offset = 40;
  // Extension headers before TCP: hop-by-hop, routing, destination options, AH.
  for (int hops = 0; hops < 8; ++hops) {
    if (next == 6) break;
    if (next == 44) return DecodeStatus::fragment;
    if (next != 0 && next != 43 && next != 60 && next != 51) return DecodeStatus::not_tcp;
    if (offset + 8 > total) return DecodeStatus::malformed;
    if (offset + 8 > captured) return DecodeStatus::truncated;
    std::size_t length = next == 51 ? (std::size_t{p[offset + 1]} + 2) * 4 : (std::size_t{p[offset + 1]} + 1) * 8;
    next = p[offset];
    offset += length;
    if (offset > total) return DecodeStatus::malformed;
  }
  if (next != 6) return DecodeStatus::not_tcp;
  if (offset > captured) return DecodeStatus::truncated;
  out.source.family = out.destination.family = 6;
  std::memcpy(out.source.bytes, p + 8, 16);
  std::memcpy(out.destination.bytes, p + 24, 16);
  return decode_tcp({p + offset, captured - offset, total - offset}, out);
}

[[gnu::always_inline]] inline DecodeStatus decode_ip(std::uint16_t ethertype, Layer l3, TcpSegment& out) {
  if (ethertype == kEtherIpv4) return decode_ipv4(l3, out);
  if (ethertype == kEtherIpv6) return decode_ipv6(l3, out);
  return DecodeStatus::not_tcp;
}

Layer skip(Layer l, std::size_t n) { return {l.data + n, l.captured - n, l.wire - n}; }

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
      return true;
    default:
      return false;
  }
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
  auto need = [&](std::size_t n) { return frame.captured >= n; };
  switch (link_type) {
    case link::ethernet: {
      if (!need(14)) return frame.wire < 14 ? DecodeStatus::malformed : DecodeStatus::truncated;
      std::uint16_t type = be16(data + 12);
      std::size_t offset = 14;
      for (int tags = 0; tags < 2 && (type == kEtherVlan || type == kEtherQinQ || type == kEtherVlan9100); ++tags) {
        if (!need(offset + 4)) return DecodeStatus::truncated;
        type = be16(data + offset + 2);
        offset += 4;
      }
      return decode_ip(type, skip(frame, offset), out);
    }
    case link::linux_sll: {
      if (!need(16)) return frame.wire < 16 ? DecodeStatus::malformed : DecodeStatus::truncated;
      std::uint16_t type = be16(data + 14);
      std::size_t offset = 16;
      if (type == kEtherVlan) {  // the kernel leaves the tag in place when it cannot strip it
        if (!need(20)) return DecodeStatus::truncated;
        type = be16(data + 18);
        offset = 20;
      }
      return decode_ip(type, skip(frame, offset), out);
    }
    case link::linux_sll2: {
      if (!need(20)) return frame.wire < 20 ? DecodeStatus::malformed : DecodeStatus::truncated;
      std::uint16_t type = be16(data);
      std::size_t offset = 20;
      if (type == kEtherVlan) {
        if (!need(24)) return DecodeStatus::truncated;
        type = be16(data + 22);
        offset = 24;
      }
      return decode_ip(type, skip(frame, offset), out);
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
      if (family == 2) return decode_ipv4(skip(frame, 4), out);
      if (family == 24 || family == 28 || family == 30 || family == 10) return decode_ipv6(skip(frame, 4), out);
      return DecodeStatus::not_tcp;
    }
    case link::raw:
    case link::raw_openbsd:
    case link::raw_linktype:
    case link::ipv4:
    case link::ipv6: {
      if (!need(1)) return DecodeStatus::malformed;
      int version = data[0] >> 4;
      if (version == 4) return decode_ipv4(frame, out);
      if (version == 6) return decode_ipv6(frame, out);
      return DecodeStatus::malformed;
    }
    default:
      return DecodeStatus::unsupported_link;
  }
}

}  // namespace doppel::plugins::raw
