#include "capture_filter.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace doppel::plugins::raw {

std::string GeneratedFilter::expression() const {
  std::string filter = "tcp";
  if (!ports.empty()) {
    std::string port = requests_only ? "dst port " : "port ";
    filter += " and (";
    for (std::size_t i = 0; i < ports.size(); ++i) filter += (i ? " or " : "") + port + std::to_string(ports[i]);
    filter += ")";
  }
  if (!host.empty()) filter += " and host " + host;
  // Pure ACKs carry nothing the reassembler needs (no data, no SYN/FIN/RST) and are half the
  // packets of keep-alive traffic: the kernel leaves them out of the ring. IPv4 fragments
  // still come (and are counted); IPv6 packets all come (extension headers move the TCP header).
  filter += " and (ip6 or ip[6:2] & 0x1fff != 0 or tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0"
            " or ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) != 0)";
  return filter;
}

namespace {

// The generated filter inside encapsulations, written with explicit offsets (`link[...]`):
// libpcap's `vlan`, `pppoes` and `mpls` shift the offsets of everything after them in the
// expression, so alternatives of different depths cannot be written with them. On a live
// Linux interface the kernel strips the outer tag before the filter runs: a frame then
// matches the alternative one tag shallower, which is there too.
//
// The kernel accepts at most 4096 BPF instructions, and each alternative repeats the port and
// host test at other offsets. So the test is repeated where traffic is heavy (one or two
// tags, PPPoE, VXLAN with an untagged inner frame); rarer encapsulations (three tags or more,
// MPLS, GRE, VXLAN with a tagged inner frame) are taken whole. Either way doppel tests every
// encapsulated segment again once decoded (GeneratedFilter::matches), so what BPF let through
// is exact in the end, and what the decoder cannot open is counted.
class EncapsulatedFilter {
 public:
  EncapsulatedFilter(const GeneratedFilter& filter, std::vector<IpAddress> hosts)
      : filter_(filter), hosts_(std::move(hosts)) {}

  // The alternatives for a link whose ethertype is at `type` and its payload at `payload`,
  // besides plain IPv4/IPv6 right behind the link header (the base expression has those).
  std::string for_link(int type, int payload) const {
    std::vector<std::string> alternatives;
    std::string tags;  // "tpid(12) and tpid(16) and "
    for (int depth = 0; depth <= kTestedTags; ++depth) {
      // A tag is 4 bytes at the link payload: its TCI, then the next ethertype.
      int t = depth == 0 ? type : payload + 4 * depth - 2, p = payload + 4 * depth;
      if (depth > 0) {
        alternatives.push_back(tags + ethertype(t, 0x0800) + " and " + tcp4(num(p)));
        alternatives.push_back(tags + ethertype(t, 0x86dd) + " and " + tcp6(num(p)));
      }
      // Parenthesised: libpcap gives `and` and `or` the same precedence, left to right.
      for (auto& inner : encapsulations(t, p)) alternatives.push_back(tags + "(" + inner + ")");
      tags += tpid(num(t)) + " and ";
    }
    alternatives.push_back(tags.substr(0, tags.size() - 5));  // more tags: taken whole
    return join(alternatives);
  }

 private:
  static constexpr int kTestedTags = 2;

  static std::string num(int n) { return std::to_string(n); }
  static std::string at(const std::string& base, int plus) { return plus == 0 ? base : base + "+" + num(plus); }
  static std::string join(const std::vector<std::string>& alternatives) {
    std::string out;
    for (const auto& a : alternatives) out += (out.empty() ? "(" : " or (") + a + ")";
    return out;
  }
  static std::string ethertype(int offset, int value) { return "link[" + num(offset) + ":2] = " + hex(value); }
  static std::string hex(std::uint32_t value) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%x", value);
    return text;
  }
  static std::string tpid(const std::string& o) {
    return "(link[" + o + ":2] = 0x8100 or link[" + o + ":2] = 0x88a8 or link[" + o + ":2] = 0x9100)";
  }

  // PPPoE, MPLS, VXLAN and GRE with their ethertype at `t` and their header at `p`.
  std::vector<std::string> encapsulations(int t, int p) const {
    std::vector<std::string> out;
    std::string q = num(p);
    std::string ppp = "link[" + at(q, 6) + ":2]";
    // PPP carrying something else than IP (but no PPP control protocol): taken, to be counted.
    out.push_back(ethertype(t, 0x8864) + " and ((" + ppp + " = 0x21 and " + tcp4(at(q, 8)) + ") or (" + ppp +
                  " = 0x57 and " + tcp6(at(q, 8)) + ") or (" + ppp + " != 0x21 and " + ppp + " != 0x57 and " + ppp +
                  " < 0x8000))");
    out.push_back(ethertype(t, 0x8847) + " or " + ethertype(t, 0x8848));
    // MACsec, 802.1ah and NSH: not opened, taken to be counted as such.
    out.push_back(ethertype(t, 0x88e5) + " or " + ethertype(t, 0x88e7) + " or " + ethertype(t, 0x894f));
    // VXLAN over IPv4 and IPv6: UDP to 4789, the inner Ethernet frame 16 bytes on. GRE and IP
    // in IP over IPv4 and IPv6 (protocols 47, 4, 41), taken whole.
    std::string udp4 = q + "+((link[" + q + "] & 0xf) << 2)";
    std::string v4 = ethertype(t, 0x0800) + " and link[" + at(q, 6) + ":2] & 0x1fff = 0 and link[" + at(q, 9) + "] = ";
    std::string v6 = ethertype(t, 0x86dd) + " and link[" + at(q, 6) + "] = ";
    out.push_back(v4 + "17 and link[" + udp4 + "+2:2] = " + num(kVxlanPort) + " and (" + inner_ethernet(udp4 + "+16") +
                  ")");
    out.push_back(v6 + "17 and link[" + at(q, 42) + ":2] = " + num(kVxlanPort) + " and (" +
                  inner_ethernet(at(q, 56)) + ")");
    for (const std::string& ip : {v4, v6})
      out.push_back("(" + ip + "47) or (" + ip + "4) or (" + ip + "41)");
    return out;
  }

  // An Ethernet frame inside a tunnel, starting at `e`: IPv4 or IPv6 tested, a tagged one
  // (or any other ethertype) taken whole.
  std::string inner_ethernet(const std::string& e) const {
    std::string type = "link[" + e + "+12:2]";
    return "(" + type + " = 0x800 and " + tcp4(e + "+14") + ") or (" + type + " = 0x86dd and " + tcp6(e + "+14") +
           ") or (" + type + " != 0x800 and " + type + " != 0x86dd)";
  }

  // TCP in the IPv4 packet at `o` to or from the ports and the host. Not a later fragment
  // (no TCP header in it), as libpcap's `port`. Pure ACKs are taken: a shorter program.
  std::string tcp4(const std::string& o) const {
    std::string h = "((link[" + o + "] & 0xf) << 2)";
    std::string out = "link[" + o + "] & 0xf0 = 0x40 and link[" + o + "+9] = 6 and link[" + o + "+6:2] & 0x1fff = 0";
    out += ports(o + "+" + h);
    std::string hosts;
    for (const auto& a : hosts_) {
      if (a.family != 4) continue;
      std::uint32_t v = std::uint32_t{a.bytes[0]} << 24 | std::uint32_t{a.bytes[1]} << 16 |
                        std::uint32_t{a.bytes[2]} << 8 | a.bytes[3];
      for (int field : {12, 16}) hosts += (hosts.empty() ? "" : " or ") + std::string("link[") + o + "+" + num(field) + ":4] = " + hex(v);
    }
    if (!hosts_.empty()) out += " and (" + (hosts.empty() ? std::string("0 = 1") : hosts) + ")";
    return out;
  }

  std::string tcp6(const std::string& o) const {
    std::string out = "link[" + o + "] & 0xf0 = 0x60 and link[" + o + "+6] = 6";
    out += ports(o + "+40");
    std::string hosts;
    for (const auto& a : hosts_) {
      if (a.family != 6) continue;
      for (int field : {8, 24}) {
        std::string match;
        for (int word = 0; word < 4; ++word) {
          const std::uint8_t* b = a.bytes + 4 * word;
          std::uint32_t v = std::uint32_t{b[0]} << 24 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[2]} << 8 | b[3];
          match += (word ? " and " : "") + std::string("link[") + o + "+" + num(field + 4 * word) + ":4] = " + hex(v);
        }
        hosts += (hosts.empty() ? "(" : " or (") + match + ")";
      }
    }
    if (!hosts_.empty()) out += " and (" + (hosts.empty() ? std::string("0 = 1") : hosts) + ")";
    return out;
  }

  // The port test on the TCP header at `tcp`.
  std::string ports(const std::string& tcp) const {
    if (filter_.ports.empty()) return "";
    std::string out;
    for (std::uint16_t port : filter_.ports) {
      if (!filter_.requests_only) out += (out.empty() ? "" : " or ") + std::string("link[") + tcp + ":2] = " + num(port);
      out += (out.empty() ? "" : " or ") + std::string("link[") + tcp + "+2:2] = " + num(port);
    }
    return " and (" + out + ")";
  }

  const GeneratedFilter& filter_;
  std::vector<IpAddress> hosts_;
};

}  // namespace

std::optional<std::vector<IpAddress>> GeneratedFilter::host_addresses() const {
  std::vector<IpAddress> out;
  if (host.empty()) return out;
  IpAddress a;
  if (inet_pton(AF_INET, host.c_str(), a.bytes) == 1) {
    a.family = 4;
    return std::vector<IpAddress>{a};
  }
  if (inet_pton(AF_INET6, host.c_str(), a.bytes) == 1) {
    a.family = 6;
    return std::vector<IpAddress>{a};
  }
  // A name: all its addresses, as libpcap's `host NAME` takes them.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0) return std::nullopt;
  for (addrinfo* i = found; i != nullptr; i = i->ai_next) {
    IpAddress b;
    if (i->ai_family == AF_INET) {
      b.family = 4;
      std::memcpy(b.bytes, &reinterpret_cast<sockaddr_in*>(i->ai_addr)->sin_addr, 4);
    } else if (i->ai_family == AF_INET6) {
      b.family = 6;
      std::memcpy(b.bytes, &reinterpret_cast<sockaddr_in6*>(i->ai_addr)->sin6_addr, 16);
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), b) == out.end()) out.push_back(b);
  }
  freeaddrinfo(found);
  return out;
}

std::string GeneratedFilter::expression_for(int link_type) const {
  std::string base = expression();
  // BPF cannot walk NFLOG's TLVs (libpcap refuses `tcp` there): the frames are all taken and
  // verdict() filters them once decoded.
  if (link_type == DLT_NFLOG) return "";
  int type = 0, payload = 0;  // where the ethertype and the link payload are
  switch (link_type) {
    case DLT_EN10MB: type = 12, payload = 14; break;
    case DLT_LINUX_SLL: type = 14, payload = 16; break;
    case DLT_LINUX_SLL2: type = 0, payload = 20; break;
    default: return base;  // IP right behind the link header: libpcap's own expression is exact
  }
  auto hosts = host_addresses();
  if (!hosts) return base;  // a name that does not resolve: libpcap says so when compiling
  return "(" + base + ") or " + EncapsulatedFilter(*this, std::move(*hosts)).for_link(type, payload);
}

std::optional<bool> GeneratedFilter::verdict(int link_type, const CapturedFrame& frame, const TcpSegment& segment,
                                             const std::vector<IpAddress>& hosts) const {
  if (link_type == DLT_NFLOG) {  // no BPF there: this is the filter
    if (!host.empty() && hosts.empty()) return matches(segment, host_addresses().value_or(std::vector<IpAddress>{}));
    return matches(segment, hosts);
  }
  // Only where BPF reads the very fields the decoder read: IPv4 right after a link header
  // BPF knows (no VLAN tag, no tunnel, no NULL/loopback family word), and no host name to resolve.
  if (!host.empty() || segment.source.family != 4 || segment.encapsulated) return std::nullopt;
  const std::uint8_t* d = frame.data;
  auto ethertype_at = [&](std::size_t offset) {
    return frame.caplen >= offset + 2 && (d[offset] << 8 | d[offset + 1]) == 0x0800;
  };
  bool plain_ipv4 = false;
  switch (link_type) {
    case DLT_EN10MB: plain_ipv4 = ethertype_at(12); break;
    case DLT_LINUX_SLL: plain_ipv4 = ethertype_at(14); break;
    case DLT_LINUX_SLL2: plain_ipv4 = ethertype_at(0); break;
    case DLT_RAW: case DLT_IPV4: plain_ipv4 = true; break;  // the decoder read version 4
    default: break;
  }
  if (!plain_ipv4) return std::nullopt;
  // Decoded as TCP: protocol 6, not a fragment, headers whole. What the expression asks on top:
  bool port_matches = ports.empty();
  for (std::uint16_t port : ports)
    port_matches = port_matches || segment.destination_port == port || (!requests_only && segment.source_port == port);
  bool not_pure_ack = (segment.flags & (tcp_flag::syn | tcp_flag::fin | tcp_flag::rst)) != 0 ||
                      segment.payload.size() + segment.missing != 0;
  return port_matches && not_pure_ack;
}

bool GeneratedFilter::matches(const TcpSegment& segment, const std::vector<IpAddress>& hosts) const {
  bool port_matches = ports.empty();
  for (std::uint16_t port : ports)
    port_matches = port_matches || segment.destination_port == port || (!requests_only && segment.source_port == port);
  if (!port_matches || host.empty()) return port_matches;
  for (const auto& a : hosts)
    if (a == segment.source || a == segment.destination) return true;
  return false;
}

}  // namespace doppel::plugins::raw
