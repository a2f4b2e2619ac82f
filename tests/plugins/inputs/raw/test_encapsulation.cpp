// Encapsulations in the `raw` input: VLAN stacks, PPPoE, MPLS, VXLAN, GRE, NFLOG. The decoder
// opens them (or says why not), the generated BPF filter lets them through (compiled and run
// by libpcap itself), and a capture of each gives its HTTP messages, counted when refused.
#include <doctest/doctest.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>

#include "capture_filter.hpp"
#include "doppel/testing.hpp"
#include "packet_decoder.hpp"
#include "pcap_builder.hpp"

using namespace doppel;
using namespace doppel::plugins::raw;
namespace pb = pcap_builder;

namespace {

constexpr int kNflog = 239;
const pb::Address kClient = pb::Address::v4("192.168.7.10");
const pb::Address kServer = pb::Address::v4("192.168.7.20");
const std::string kGet = "GET /v2/robot/query HTTP/1.1\r\nHost: svc\r\n\r\n";
const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

// A wrapper puts an IP packet (IPv4 or IPv6, by its first nibble) into a whole frame.
using Wrap = std::function<std::string(const std::string& ip)>;

std::uint16_t ethertype_of(const std::string& ip) { return (ip[0] >> 4) == 4 ? 0x0800 : 0x86dd; }

std::string ethernet(const std::vector<std::uint16_t>& tpids, std::uint16_t type, const std::string& payload) {
  std::string f("\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01", 12);
  std::uint16_t vid = 10;
  for (std::uint16_t tpid : tpids) {
    pb::put16(f, tpid);
    pb::put16(f, vid++);
  }
  pb::put16(f, type);
  return f + payload;
}

std::string pppoe(std::uint16_t protocol, const std::string& payload) {
  std::string h;
  h.push_back(0x11);
  h.push_back(0);
  pb::put16(h, 0x1234);  // session id
  pb::put16(h, static_cast<std::uint16_t>(payload.size() + 2));
  pb::put16(h, protocol);
  return h + payload;
}

std::string mpls(int labels, const std::string& payload) {
  std::string h;
  for (int i = 0; i < labels; ++i) pb::put32(h, (100u + i) << 12 | (i + 1 == labels ? 0x100u : 0u) | 64u);
  return h + payload;
}

// An IPv4 or IPv6 packet of another protocol around `payload`.
std::string ip(int family, std::uint8_t protocol, const std::string& payload) {
  std::string h;
  if (family == 4) {
    h.push_back(0x45);
    h.push_back(0);
    pb::put16(h, static_cast<std::uint16_t>(20 + payload.size()));
    pb::put16(h, 7);
    pb::put16(h, 0);
    h.push_back(64);
    h.push_back(static_cast<char>(protocol));
    pb::put16(h, 0);
    pb::put32(h, 0x0a000001);
    pb::put32(h, 0x0a000002);
  } else {
    pb::put32(h, 0x60000000);
    pb::put16(h, static_cast<std::uint16_t>(payload.size()));
    h.push_back(static_cast<char>(protocol));
    h.push_back(64);
    h.append("\xfd\x00", 2);
    h.append(13, '\0');
    h.push_back(1);
    h.append("\xfd\x00", 2);
    h.append(13, '\0');
    h.push_back(2);
  }
  return h + payload;
}

std::string vxlan(int outer_family, const std::string& inner_frame, std::uint8_t flags = 0x08) {
  std::string u;
  pb::put16(u, 54321);
  pb::put16(u, kVxlanPort);
  pb::put16(u, static_cast<std::uint16_t>(16 + inner_frame.size()));
  pb::put16(u, 0);
  u.push_back(static_cast<char>(flags));
  u.append(3, '\0');
  pb::put32(u, 4242u << 8);  // VNI
  return ip(outer_family, 17, u + inner_frame);
}

std::string gre(int outer_family, std::uint16_t flags, std::uint16_t protocol, const std::string& payload) {
  std::string g;
  pb::put16(g, flags);
  pb::put16(g, protocol);
  for (std::uint16_t bit : {0x8000, 0x2000, 0x1000})
    if (flags & bit) pb::put32(g, 0x01020304);
  return ip(outer_family, 47, g + payload);
}

void host16(std::string& s, std::uint16_t v) {
  char b[2];
  std::memcpy(b, &v, 2);
  s.append(b, 2);
}

// NFLOG: header, a prefix TLV (odd length, padded), then the packet in TLV 9.
std::string nflog(const std::string& packet, bool with_payload = true) {
  std::string f;
  f.push_back(static_cast<char>((packet[0] >> 4) == 4 ? 2 : 10));
  f.push_back(0);
  pb::put16(f, 5);  // group
  std::string prefix = "doppel";
  host16(f, static_cast<std::uint16_t>(4 + prefix.size() + 1));
  host16(f, 10);
  f += prefix;
  f.push_back('\0');
  while (f.size() % 4) f.push_back('\0');
  if (with_payload) {
    host16(f, static_cast<std::uint16_t>(4 + packet.size()));
    host16(f, 9);
    f += packet;
  }
  return f;
}

struct Encapsulation {
  const char* name;
  int link;
  Wrap wrap;
};

// Every way of carrying a packet that doppel opens, on Ethernet unless said.
std::vector<Encapsulation> encapsulations() {
  std::vector<Encapsulation> out;
  std::vector<std::uint16_t> tpids;
  for (int tags = 0; tags <= kMaxVlanTags; ++tags) {
    static const char* names[] = {"0 tags", "1 tag", "2 tags", "3 tags", "4 tags", "5 tags", "6 tags", "7 tags", "8 tags"};
    out.push_back({names[tags], pb::kEthernet,
                   [tpids](const std::string& p) { return ethernet(tpids, ethertype_of(p), p); }});
    tpids.push_back(tags % 3 == 0 ? 0x88a8 : tags % 3 == 1 ? 0x8100 : 0x9100);
  }
  out.push_back({"PPPoE", pb::kEthernet, [](const std::string& p) {
                   return ethernet({}, 0x8864, pppoe((p[0] >> 4) == 4 ? 0x0021 : 0x0057, p));
                 }});
  out.push_back({"PPPoE in 802.1Q", pb::kEthernet, [](const std::string& p) {
                   return ethernet({0x8100}, 0x8864, pppoe((p[0] >> 4) == 4 ? 0x0021 : 0x0057, p));
                 }});
  out.push_back({"MPLS, 1 label", pb::kEthernet, [](const std::string& p) { return ethernet({}, 0x8847, mpls(1, p)); }});
  out.push_back({"MPLS, 3 labels in 802.1Q", pb::kEthernet,
                 [](const std::string& p) { return ethernet({0x8100}, 0x8847, mpls(3, p)); }});
  out.push_back({"VXLAN over IPv4", pb::kEthernet, [](const std::string& p) {
                   return ethernet({}, 0x0800, vxlan(4, ethernet({}, ethertype_of(p), p)));
                 }});
  out.push_back({"VXLAN over IPv6, inner 802.1Q", pb::kEthernet, [](const std::string& p) {
                   return ethernet({}, 0x86dd, vxlan(6, ethernet({0x8100}, ethertype_of(p), p)));
                 }});
  out.push_back({"VXLAN over IPv4 in QinQ", pb::kEthernet, [](const std::string& p) {
                   return ethernet({0x88a8, 0x8100}, 0x0800, vxlan(4, ethernet({}, ethertype_of(p), p)));
                 }});
  out.push_back({"GRE, IP", pb::kEthernet,
                 [](const std::string& p) { return ethernet({}, 0x0800, gre(4, 0, ethertype_of(p), p)); }});
  out.push_back({"GRE with key and sequence, bridged Ethernet", pb::kEthernet, [](const std::string& p) {
                   return ethernet({}, 0x0800, gre(4, 0x3000, 0x6558, ethernet({}, ethertype_of(p), p)));
                 }});
  out.push_back({"GRE over IPv6 with checksum", pb::kEthernet,
                 [](const std::string& p) { return ethernet({}, 0x86dd, gre(6, 0x8000, ethertype_of(p), p)); }});
  out.push_back({"IPv4 in IPv4", pb::kEthernet, [](const std::string& p) {
                   return ethernet({}, 0x0800, ip(4, (p[0] >> 4) == 4 ? 4 : 41, p));
                 }});
  out.push_back({"SLL2 with a tag left in", pb::kSll2, [](const std::string& p) {
                   std::string f;
                   pb::put16(f, 0x8100);
                   pb::put16(f, 0);
                   pb::put32(f, 1);
                   pb::put16(f, 1);
                   f.push_back(0);
                   f.push_back(6);
                   f.append(8, '\0');
                   pb::put16(f, 7);
                   pb::put16(f, ethertype_of(p));
                   return f + p;
                 }});
  out.push_back({"NFLOG", kNflog, [](const std::string& p) { return nflog(p); }});
  return out;
}

pb::Segment segment(pb::Address client, pb::Address server, std::uint16_t port, std::string payload,
                    std::uint8_t flags = pb::flag::ack | pb::flag::psh) {
  pb::Segment s;
  s.src = client;
  s.dst = server;
  s.sport = 40000;
  s.dport = port;
  s.seq = 1000;
  s.ack = 2000;
  s.flags = flags;
  s.payload = std::move(payload);
  return s;
}

// libpcap's verdict on one frame, the filter compiled for `link` as a live capture would.
bool bpf_takes(const std::string& expression, int link, const std::string& frame) {
  pcap_t* dead = pcap_open_dead(link, 262144);
  bpf_program program{};
  REQUIRE_MESSAGE(pcap_compile(dead, &program, expression.c_str(), 1, PCAP_NETMASK_UNKNOWN) == 0, pcap_geterr(dead));
  pcap_pkthdr header{};
  header.caplen = header.len = static_cast<bpf_u_int32>(frame.size());
  bool taken = pcap_offline_filter(&program, &header, reinterpret_cast<const u_char*>(frame.data())) != 0;
  pcap_freecode(&program);
  pcap_close(dead);
  return taken;
}

DecodeStatus decode(int link, const std::string& frame, TcpSegment& s) {
  return decode_packet(link, reinterpret_cast<const std::uint8_t*>(frame.data()), frame.size(), frame.size(), s);
}

struct Run {
  std::vector<MessagePtr> messages;
  std::map<std::string, std::uint64_t> counters;
  std::uint64_t failed = 0;
};

Run run_file(const pb::Capture& capture, Value::Table options) {
  static std::atomic<int> n{0};
  std::string path = (std::filesystem::temp_directory_path() /
                      ("doppel-encap-" + std::to_string(getpid()) + "-" + std::to_string(n++) + ".pcap"))
                         .string();
  capture.write_pcap(path);
  options.emplace_back("file", path);
  testing::StageHarness h(testing::linked_plugin("raw"), Value(std::move(options)));
  h.run();
  Run r;
  r.messages = h.emitted();
  for (const char* name : {"packets", "packets.not_tcp", "packets.malformed", "packets.truncated",
                           "packets.unsupported_encapsulation", "packets.too_deep", "requests", "responses"})
    r.counters[name] = h.counter(name).value();
  r.failed = h.failed("capture_error");
  std::filesystem::remove(path);
  return r;
}

}  // namespace

TEST_CASE("decoder: every encapsulation gives the inner TCP segment, IPv4 and IPv6") {
  for (const auto& e : encapsulations())
    for (auto [client, server] : {std::pair{kClient, kServer},
                                  std::pair{pb::Address::v6("fd00::10"), pb::Address::v6("fd00::20")}}) {
      CAPTURE(std::string(e.name));
      CAPTURE(client.family);
      std::string frame = e.wrap(pb::ip_packet(segment(client, server, 80, kGet)));
      TcpSegment s;
      REQUIRE(decode(e.link, frame, s) == DecodeStatus::tcp);
      CHECK(s.payload == kGet);
      CHECK(s.destination_port == 80);
      CHECK(s.source_port == 40000);
      CHECK(s.seq == 1000);
      CHECK(std::memcmp(s.destination.bytes, server.bytes, client.family == 4 ? 4 : 16) == 0);
      bool plain = std::string(e.name) == "0 tags" || std::string(e.name) == "NFLOG";
      CHECK(s.encapsulated == !plain);
      // Cut anywhere inside the headers: truncated or malformed, never a read past the end.
      std::size_t headers = frame.size() - kGet.size();
      for (std::size_t cut = 0; cut < headers; ++cut) {
        TcpSegment c;
        DecodeStatus status = decode_packet(e.link, reinterpret_cast<const std::uint8_t*>(frame.data()), cut,
                                            frame.size(), c);
        CHECK(status != DecodeStatus::tcp);
      }
    }
}

TEST_CASE("decoder: too many tags, labels and tunnels are too_deep; unopened framings are unsupported") {
  std::string packet = pb::ip_packet(segment(kClient, kServer, 80, kGet));
  auto skip_of = [](int link, const std::string& frame) {
    TcpSegment s;
    DecodeStatus status = decode(link, frame, s);
    CHECK(status == DecodeStatus::not_tcp);
    return s.skip;
  };
  using Skip = TcpSegment::Skip;
  CHECK(skip_of(pb::kEthernet, ethernet(std::vector<std::uint16_t>(kMaxVlanTags + 1, 0x8100), 0x0800, packet)) ==
        Skip::too_deep);
  CHECK(skip_of(pb::kEthernet, ethernet({}, 0x8847, mpls(kMaxMplsLabels + 1, packet))) == Skip::too_deep);
  std::string tunnels = packet;
  for (int i = 0; i <= kMaxTunnels; ++i) tunnels = vxlan(4, ethernet({}, 0x0800, tunnels));
  CHECK(skip_of(pb::kEthernet, ethernet({}, 0x0800, tunnels)) == Skip::too_deep);
  // PPP carrying MPLS, an Ethernet pseudowire in MPLS, GRE with routing, PPTP's GRE, ERSPAN,
  // VXLAN without a VNI, MACsec.
  CHECK(skip_of(pb::kEthernet, ethernet({}, 0x8864, pppoe(0x0281, packet))) == Skip::unsupported_encapsulation);
  CHECK(skip_of(pb::kEthernet, ethernet({}, 0x8847, mpls(1, std::string(4, '\0') + ethernet({}, 0x0800, packet)))) ==
        Skip::unsupported_encapsulation);
  CHECK(skip_of(pb::kEthernet, ethernet({}, 0x0800, gre(4, 0x4000, 0x0800, packet))) == Skip::unsupported_encapsulation);
  CHECK(skip_of(pb::kEthernet, ethernet({}, 0x0800, gre(4, 0x2001, 0x880b, packet))) == Skip::unsupported_encapsulation);
  CHECK(skip_of(pb::kEthernet, ethernet({}, 0x0800, gre(4, 0x1000, 0x88be, packet))) == Skip::unsupported_encapsulation);
  CHECK(skip_of(pb::kEthernet, ethernet({}, 0x0800, vxlan(4, ethernet({}, 0x0800, packet), 0x00))) ==
        Skip::unsupported_encapsulation);
  CHECK(skip_of(pb::kEthernet, ethernet({}, 0x88e5, packet)) == Skip::unsupported_encapsulation);
  // Plainly not TCP: no finer reason.
  CHECK(skip_of(pb::kEthernet, ethernet({0x8100}, 0x0806, std::string(28, '\0'))) == Skip::none);  // ARP
  CHECK(skip_of(pb::kEthernet, ethernet({}, 0x8864, pppoe(0xc021, std::string(8, '\0')))) == Skip::none);  // LCP
  CHECK(skip_of(pb::kEthernet, ethernet({}, 0x0800, ip(4, 17, std::string(8, '\0')))) == Skip::none);  // UDP
  CHECK(skip_of(kNflog, nflog(packet, false)) == Skip::none);  // logged without the packet
  // A PPPoE length beyond the frame, a TLV shorter than its own header.
  TcpSegment s;
  std::string bad = ethernet({}, 0x8864, pppoe(0x0021, packet));
  bad[14 + 5] = static_cast<char>(0xff);
  CHECK(decode(pb::kEthernet, bad, s) == DecodeStatus::malformed);
  std::string tlv = nflog(packet);
  tlv[4] = tlv[5] = 0;
  CHECK(decode(kNflog, tlv, s) == DecodeStatus::malformed);
}

TEST_CASE("link types: NFLOG is decoded, others are refused by name") {
  CHECK(link_type_supported(kNflog));
  CHECK_FALSE(link_type_supported(105));  // 802.11
  CHECK_FALSE(link_type_supported(127));  // radiotap
  CHECK(supported_link_type_names().find("NFLOG") != std::string::npos);
  pb::Capture wifi(105);
  wifi.add_frame(std::string(40, '\0'), 1);
  // A file's link type is known from its header: refused at validation, by name.
  std::string path = (std::filesystem::temp_directory_path() / ("doppel-wifi-" + std::to_string(getpid()) + ".pcap"))
                         .string();
  wifi.write_pcap(path);
  CHECK_THROWS_WITH_AS(testing::StageHarness(testing::linked_plugin("raw"), Value::table({{"file", path}})),
                       doctest::Contains("its link type IEEE802_11 (DLT 105) is not one doppel decodes"),
                       ConfigError);
  std::filesystem::remove(path);
}

TEST_CASE("generated BPF filter, run by libpcap: encapsulated traffic of the ports passes, other ports do not") {
  struct Rule {
    std::vector<std::uint16_t> ports;
    std::string host;
    bool requests_only;
  };
  for (const Rule& rule : {Rule{{80}, "", false}, Rule{{8080, 80}, "", true}, Rule{{80}, "192.168.7.20", false},
                           Rule{{80}, "fd00::20", false}, Rule{{}, "", false}}) {
    GeneratedFilter generated{rule.ports, rule.host, rule.requests_only};
    for (const auto& e : encapsulations())
      for (int family : {4, 6}) {
        CAPTURE(std::string(e.name));
        CAPTURE(family);
        CAPTURE(rule.host);
        CAPTURE(rule.ports.size());
        pb::Address client = family == 4 ? kClient : pb::Address::v6("fd00::10");
        pb::Address server = family == 4 ? kServer : pb::Address::v6("fd00::20");
        std::string expression = generated.expression_for(e.link);
        std::vector<IpAddress> hosts = generated.host_addresses().value();
        // Taken: a request to port 80 (with data, and a bare SYN), and its response unless
        // only requests are wanted, when the host is right.
        bool host_right = rule.host.empty() || (family == 4) == (rule.host.find(':') == std::string::npos);
        for (auto s : {segment(client, server, 80, kGet), segment(client, server, 80, "", pb::flag::syn)}) {
          std::string frame = e.wrap(pb::ip_packet(s));
          TcpSegment decoded;
          REQUIRE(decode(e.link, frame, decoded) == DecodeStatus::tcp);
          bool wanted = generated.matches(decoded, hosts);
          CHECK(wanted == host_right);
          // What BPF drops is never wanted; for NFLOG there is no BPF (expression "").
          if (wanted) CHECK(bpf_takes(expression, e.link, frame));
        }
        // Not taken: another port, in both directions. BPF alone drops it where it tests the
        // ports (plain, 1 and 2 tags, PPPoE, VXLAN with an untagged inner frame).
        std::string name = e.name;
        bool tested_in_bpf = e.link != kNflog && (name == "0 tags" || name == "1 tag" || name == "2 tags" ||
                                                  name.rfind("PPPoE", 0) == 0 || name == "VXLAN over IPv4" ||
                                                  name == "VXLAN over IPv4 in QinQ");
        for (auto s : {segment(client, server, 81, kGet), segment(server, client, 81, kOk)}) {
          if (rule.ports.empty()) continue;
          s.sport = 40001;
          std::string frame = e.wrap(pb::ip_packet(s));
          TcpSegment decoded;
          REQUIRE(decode(e.link, frame, decoded) == DecodeStatus::tcp);
          CHECK_FALSE(generated.matches(decoded, hosts));
          if (tested_in_bpf) CHECK_FALSE(bpf_takes(expression, e.link, frame));
        }
      }
  }
}

TEST_CASE("generated BPF filter stays within the kernel's 4096 instructions") {
  std::vector<std::uint16_t> many;
  for (std::uint16_t p = 8000; p < 8016; ++p) many.push_back(p);
  for (int link : {pb::kEthernet, pb::kSll, pb::kSll2})
    for (std::string host : {"", "10.1.2.3", "fd00::1"}) {
      GeneratedFilter generated{many, host, false};
      pcap_t* dead = pcap_open_dead(link, 262144);
      bpf_program program{};
      REQUIRE(pcap_compile(dead, &program, generated.expression_for(link).c_str(), 1, PCAP_NETMASK_UNKNOWN) == 0);
      CAPTURE(link);
      CAPTURE(host);
      CHECK(program.bf_len < 4096);
      pcap_freecode(&program);
      pcap_close(dead);
    }
  // NFLOG: libpcap cannot filter it, so nothing is compiled and doppel filters.
  GeneratedFilter nflog_filter{{80}, "", false};
  CHECK(nflog_filter.expression_for(kNflog).empty());
}

TEST_CASE("a capture of each encapsulation gives its exchange on the port; refused frames are counted") {
  for (const auto& e : encapsulations()) {
    CAPTURE(std::string(e.name));
    pb::Capture c(e.link);
    std::int64_t t = 1'700'000'000'000'000'000;
    for (std::uint16_t port : {81, 80}) {  // port 81 is noise the filter must leave out
      pb::Conversation conv(kClient, static_cast<std::uint16_t>(40000 + port), kServer, port);
      for (auto& s : conv.handshake()) c.add_frame(e.wrap(pb::ip_packet(s)), t += 1000);
      c.add_frame(e.wrap(pb::ip_packet(conv.client(kGet))), t += 1000);
      c.add_frame(e.wrap(pb::ip_packet(conv.server(kOk))), t += 1000);
    }
    for (int threads : {1, 3}) {
      Run r = run_file(c, {{"port", 80}, {"track_response", true}, {"threads", threads}});
      REQUIRE(r.messages.size() == 2);
      CHECK(r.messages[0]->payload == kGet);
      CHECK(r.messages[0]->meta.destination.port == 80);
      CHECK(r.messages[1]->payload == kOk);
      CHECK(r.messages[0]->id == r.messages[1]->id);
      CHECK(r.failed == 0);
    }
  }
  // Frames the decoder will not open reach it (the filter takes them whole) and are counted.
  pb::Capture c(pb::kEthernet);
  std::string packet = pb::ip_packet(segment(kClient, kServer, 80, kGet));
  c.add_frame(ethernet(std::vector<std::uint16_t>(kMaxVlanTags + 1, 0x8100), 0x0800, packet), 1);
  c.add_frame(ethernet({}, 0x8847, mpls(kMaxMplsLabels + 1, packet)), 2);
  c.add_frame(ethernet({}, 0x8864, pppoe(0x0281, packet)), 3);
  c.add_frame(ethernet({}, 0x0800, gre(4, 0x4000, 0x0800, packet)), 4);
  c.add_frame(ethernet({0x8100}, 0x88e5, packet), 5);
  Run r = run_file(c, {{"port", 80}});
  CHECK(r.counters["packets"] == 5);
  CHECK(r.counters["packets.not_tcp"] == 5);
  CHECK(r.counters["packets.too_deep"] == 2);
  CHECK(r.counters["packets.unsupported_encapsulation"] == 3);
  CHECK(r.messages.empty());
}
