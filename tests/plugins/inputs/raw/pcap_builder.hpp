#pragma once
// Test helpers that build captures byte by byte: frames for each link type, TCP
// conversations with real sequence numbers, and pcap / pcapng files holding them.
#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace pcap_builder {

inline constexpr int kEthernet = 1, kRaw = 101, kNull = 0, kSll = 113, kSll2 = 276;

struct Address {
  int family = 4;
  std::uint8_t bytes[16] = {};
  static Address v4(const char* text) {
    Address a;
    inet_pton(AF_INET, text, a.bytes);
    return a;
  }
  static Address v6(const char* text) {
    Address a;
    a.family = 6;
    inet_pton(AF_INET6, text, a.bytes);
    return a;
  }
};

inline void put16(std::string& s, std::uint16_t v) {
  s.push_back(static_cast<char>(v >> 8));
  s.push_back(static_cast<char>(v & 0xff));
}
inline void put32(std::string& s, std::uint32_t v) {
  put16(s, static_cast<std::uint16_t>(v >> 16));
  put16(s, static_cast<std::uint16_t>(v & 0xffff));
}
inline void le32(std::string& s, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void le16(std::string& s, std::uint16_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>(v >> 8));
}

namespace flag {
inline constexpr std::uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10;
}

struct Segment {
  Address src, dst;
  std::uint16_t sport = 0, dport = 0;
  std::uint32_t seq = 0, ack = 0;
  std::uint8_t flags = flag::ack;
  std::string payload;
};

// The IP packet (IPv4 or IPv6) carrying a TCP segment.
inline std::string ip_packet(const Segment& s) {
  std::string tcp;
  put16(tcp, s.sport);
  put16(tcp, s.dport);
  put32(tcp, s.seq);
  put32(tcp, s.ack);
  tcp.push_back(static_cast<char>(5 << 4));
  tcp.push_back(static_cast<char>(s.flags));
  put16(tcp, 65535);
  put16(tcp, 0);  // checksum: not verified by capture tools
  put16(tcp, 0);
  tcp += s.payload;
  std::string ip;
  if (s.src.family == 4) {
    ip.push_back(0x45);
    ip.push_back(0);
    put16(ip, static_cast<std::uint16_t>(20 + tcp.size()));
    put16(ip, 1);
    put16(ip, 0x4000);  // don't fragment
    ip.push_back(64);
    ip.push_back(6);
    put16(ip, 0);
    ip.append(reinterpret_cast<const char*>(s.src.bytes), 4);
    ip.append(reinterpret_cast<const char*>(s.dst.bytes), 4);
  } else {
    put32(ip, 0x60000000);
    put16(ip, static_cast<std::uint16_t>(tcp.size()));
    ip.push_back(6);
    ip.push_back(64);
    ip.append(reinterpret_cast<const char*>(s.src.bytes), 16);
    ip.append(reinterpret_cast<const char*>(s.dst.bytes), 16);
  }
  return ip + tcp;
}

// One frame of `link_type` around an IP packet; `vlan` adds an 802.1Q tag on Ethernet.
inline std::string frame(int link_type, const std::string& ip, int family, bool vlan = false) {
  std::uint16_t ethertype = family == 4 ? 0x0800 : 0x86dd;
  std::string f;
  switch (link_type) {
    case kEthernet:
      f.append("\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01", 12);
      if (vlan) {
        put16(f, 0x8100);
        put16(f, 42);
      }
      put16(f, ethertype);
      break;
    case kSll:
      put16(f, 0);  // packet type: to us
      put16(f, 772);
      put16(f, 6);
      f.append(8, '\0');
      put16(f, ethertype);
      break;
    case kSll2:
      put16(f, ethertype);
      put16(f, 0);
      put32(f, 1);  // interface index
      put16(f, 772);
      f.push_back(0);
      f.push_back(6);
      f.append(8, '\0');
      break;
    case kNull:
      le32(f, family == 4 ? 2 : 30);
      break;
    case kRaw:
      break;
  }
  return f + ip;
}

struct Record {
  std::int64_t ts_ns;
  std::string bytes;       // as captured (maybe cut)
  std::uint32_t wire_len;  // as on the wire
};

struct PcapFlavour {
  bool big_endian = false;
  bool microseconds = false;
};

class Capture {
 public:
  explicit Capture(int link_type = kEthernet, std::uint32_t snaplen = 262144) : link_(link_type), snaplen_(snaplen) {}
  int link_type() const { return link_; }

  void add(const Segment& s, std::int64_t ts_ns, bool vlan = false) {
    add_frame(frame(link_, ip_packet(s), s.src.family, vlan), ts_ns);
  }
  void add_frame(std::string bytes, std::int64_t ts_ns) {
    auto wire = static_cast<std::uint32_t>(bytes.size());
    if (bytes.size() > snaplen_) bytes.resize(snaplen_);
    records_.push_back({ts_ns, std::move(bytes), wire});
  }
  std::vector<Record>& records() { return records_; }

  // Classic pcap, as written by a little-endian host with nanosecond timestamps unless told
  // otherwise (tcpdump writes microseconds, in its host's byte order).
  void write_pcap(const std::string& path, PcapFlavour flavour = {}) const {
    std::string out;
    auto u32 = [&](std::uint32_t v) {
      if (flavour.big_endian) v = __builtin_bswap32(v);
      le32(out, v);
    };
    auto u16 = [&](std::uint16_t v) {
      if (flavour.big_endian) v = __builtin_bswap16(v);
      le16(out, v);
    };
    u32(flavour.microseconds ? 0xa1b2c3d4 : 0xa1b23c4d);
    u16(2);
    u16(4);
    u32(0);
    u32(0);
    u32(snaplen_);
    u32(static_cast<std::uint32_t>(link_));
    for (const auto& r : records_) {
      u32(static_cast<std::uint32_t>(r.ts_ns / 1'000'000'000));
      std::int64_t fraction = r.ts_ns % 1'000'000'000;
      u32(static_cast<std::uint32_t>(flavour.microseconds ? fraction / 1000 : fraction));
      u32(static_cast<std::uint32_t>(r.bytes.size()));
      u32(r.wire_len);
      out += r.bytes;
    }
    std::ofstream(path, std::ios::binary) << out;
  }

  // pcapng: section header, one interface (nanosecond resolution), a Decryption Secrets Block
  // when `tls_keylog` is given (as editcap --inject-secrets writes it), enhanced packet blocks.
  void write_pcapng(const std::string& path, std::string_view tls_keylog = {}) const {
    std::string out;
    auto block = [&out](std::uint32_t type, const std::string& body) {
      std::string padded = body;
      while (padded.size() % 4) padded.push_back('\0');
      auto total = static_cast<std::uint32_t>(12 + padded.size());
      le32(out, type);
      le32(out, total);
      out += padded;
      le32(out, total);
    };
    std::string shb;
    le32(shb, 0x1a2b3c4d);
    le16(shb, 1);
    le16(shb, 0);
    le32(shb, 0xffffffff);
    le32(shb, 0xffffffff);
    block(0x0a0d0d0a, shb);
    std::string idb;
    le16(idb, static_cast<std::uint16_t>(link_));
    le16(idb, 0);
    le32(idb, snaplen_);
    le16(idb, 9);  // if_tsresol
    le16(idb, 1);
    idb.push_back(9);  // 10^-9
    idb.append(3, '\0');
    le16(idb, 0);  // opt_endofopt
    le16(idb, 0);
    block(1, idb);
    if (!tls_keylog.empty()) {
      std::string dsb;
      le32(dsb, 0x544c534b);  // TLS key log
      le32(dsb, static_cast<std::uint32_t>(tls_keylog.size()));
      dsb.append(tls_keylog);
      block(0x0a, dsb);
    }
    for (const auto& r : records_) {
      std::string epb;
      auto ts = static_cast<std::uint64_t>(r.ts_ns);
      le32(epb, 0);
      le32(epb, static_cast<std::uint32_t>(ts >> 32));
      le32(epb, static_cast<std::uint32_t>(ts & 0xffffffff));
      le32(epb, static_cast<std::uint32_t>(r.bytes.size()));
      le32(epb, r.wire_len);
      epb += r.bytes;
      block(6, epb);
    }
    std::ofstream(path, std::ios::binary) << out;
  }

 private:
  int link_;
  std::uint32_t snaplen_;
  std::vector<Record> records_;
};

// A TCP connection between a client and a server with real sequence numbers. Each call
// returns the segment so that a test can reorder, repeat or cut it before adding it.
class Conversation {
 public:
  Conversation(Address client, std::uint16_t client_port, Address server, std::uint16_t server_port,
               std::uint32_t client_isn = 1000, std::uint32_t server_isn = 5000)
      : client_(client), server_(server), cport_(client_port), sport_(server_port),
        cseq_(client_isn), sseq_(server_isn) {}

  std::vector<Segment> handshake() {
    std::vector<Segment> out;
    out.push_back(make(true, flag::syn, ""));
    cseq_ += 1;
    out.push_back(make(false, flag::syn | flag::ack, ""));
    sseq_ += 1;
    out.push_back(make(true, flag::ack, ""));
    return out;
  }
  Segment client(std::string_view bytes) { return send(true, bytes); }
  Segment server(std::string_view bytes) { return send(false, bytes); }
  Segment client_fin() { return fin(true); }
  Segment server_fin() { return fin(false); }
  Segment client_rst() { return make(true, flag::rst, ""); }
  // The next segment would start here (for building gaps and overlaps by hand).
  std::uint32_t client_seq() const { return cseq_; }
  std::uint32_t server_seq() const { return sseq_; }
  Segment raw(bool from_client, std::uint32_t seq, std::string_view bytes, std::uint8_t flags = flag::ack | flag::psh) {
    Segment s = make(from_client, flags, bytes);
    s.seq = seq;
    return s;
  }

 private:
  Segment make(bool from_client, std::uint8_t flags, std::string_view bytes) {
    Segment s;
    s.src = from_client ? client_ : server_;
    s.dst = from_client ? server_ : client_;
    s.sport = from_client ? cport_ : sport_;
    s.dport = from_client ? sport_ : cport_;
    s.seq = from_client ? cseq_ : sseq_;
    s.ack = from_client ? sseq_ : cseq_;
    s.flags = flags;
    s.payload = std::string(bytes);
    return s;
  }
  Segment send(bool from_client, std::string_view bytes) {
    Segment s = make(from_client, flag::ack | flag::psh, bytes);
    (from_client ? cseq_ : sseq_) += static_cast<std::uint32_t>(bytes.size());
    return s;
  }
  Segment fin(bool from_client) {
    Segment s = make(from_client, flag::fin | flag::ack, "");
    (from_client ? cseq_ : sseq_) += 1;
    return s;
  }
  Address client_, server_;
  std::uint16_t cport_, sport_;
  std::uint32_t cseq_, sseq_;
};

// Splits `bytes` into pieces of at most `size` bytes.
inline std::vector<std::string> split(std::string_view bytes, std::size_t size) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < bytes.size(); i += size) out.emplace_back(bytes.substr(i, size));
  return out;
}

// An HTTP/2 frame (RFC 9113 4.1): the 9-byte header, then `payload` as it is.
inline std::string http2_frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream, std::string_view payload) {
  std::string f;
  auto n = static_cast<std::uint32_t>(payload.size());
  f.push_back(static_cast<char>(n >> 16));
  f.push_back(static_cast<char>(n >> 8));
  f.push_back(static_cast<char>(n));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  put32(f, stream);
  f.append(payload);
  return f;
}

}  // namespace pcap_builder
