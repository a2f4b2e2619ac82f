// The capture path's parts on their own: decoder, reassembler, HTTP stream parser.
#include <doctest/doctest.h>

#include "capture_session.hpp"
#include "http_stream_parser.hpp"
#include "packet_decoder.hpp"
#include "pcap_builder.hpp"
#include "tcp_reassembler.hpp"

using namespace doppel::plugins::raw;
namespace pb = pcap_builder;

namespace {

TcpSegment decode(int link, const std::string& frame, DecodeStatus expect = DecodeStatus::tcp) {
  TcpSegment s;
  auto* data = reinterpret_cast<const std::uint8_t*>(frame.data());
  CHECK(decode_packet(link, data, frame.size(), frame.size(), s) == expect);
  return s;
}

struct Recorder : StreamConsumer {
  std::string stream[2];
  std::vector<std::string> events;
  void on_open(TcpConnection&) override { events.push_back("open"); }
  void on_data(TcpConnection&, int d, std::string_view bytes, std::int64_t) override { stream[d] += bytes; }
  void on_hole(TcpConnection&, int d, std::uint64_t n, HoleReason r, std::int64_t) override {
    stream[d] += "[" + std::string(r == HoleReason::gap ? "gap" : "cut") + std::to_string(n) + "]";
  }
  void on_end(TcpConnection&, int d, std::int64_t) override { events.push_back("end" + std::to_string(d)); }
  void on_close(TcpConnection&, CloseReason r, std::int64_t) override {
    events.push_back(r == CloseReason::reset ? "reset" : r == CloseReason::expired ? "expired" : "close");
  }
};

TcpSegment to_segment(const pb::Segment& s, std::string& storage) {
  storage = pb::ip_packet(s);
  return decode(pb::kRaw, storage);
}

}  // namespace

TEST_CASE("decoder reads ports, sequence numbers, flags and payload on every link type") {
  pb::Segment seg;
  seg.src = pb::Address::v4("10.1.2.3");
  seg.dst = pb::Address::v4("10.1.2.4");
  seg.sport = 1234;
  seg.dport = 80;
  seg.seq = 0xdeadbeef;
  seg.ack = 7;
  seg.flags = pb::flag::psh | pb::flag::ack;
  seg.payload = "GET / HTTP/1.1\r\n\r\n";
  for (int link : {pb::kEthernet, pb::kSll, pb::kSll2, pb::kNull, pb::kRaw}) {
    CAPTURE(link);
    const std::string frame = pb::frame(link, pb::ip_packet(seg), 4);  // the segment views into it
    TcpSegment s = decode(link, frame);
    CHECK(s.source.to_string() == "10.1.2.3");
    CHECK(s.destination.to_string() == "10.1.2.4");
    CHECK(s.source_port == 1234);
    CHECK(s.destination_port == 80);
    CHECK(s.seq == 0xdeadbeef);
    CHECK(s.flags == (tcp_flag::psh | tcp_flag::ack));
    CHECK(s.payload == seg.payload);
    CHECK(s.missing == 0);
  }
}

TEST_CASE("decoder: Ethernet padding is not payload, snaplen cuts are counted, fragments and UDP are not TCP") {
  pb::Segment seg;
  seg.src = pb::Address::v4("10.0.0.1");
  seg.dst = pb::Address::v4("10.0.0.2");
  seg.payload = "ab";
  std::string frame = pb::frame(pb::kEthernet, pb::ip_packet(seg), 4);
  const std::string padded_frame = frame + std::string(6, '\0');
  TcpSegment padded = decode(pb::kEthernet, padded_frame);
  CHECK(padded.payload == "ab");

  TcpSegment cut;
  auto* data = reinterpret_cast<const std::uint8_t*>(frame.data());
  REQUIRE(decode_packet(pb::kEthernet, data, frame.size() - 1, frame.size(), cut) == DecodeStatus::tcp);
  CHECK(cut.payload == "a");
  CHECK(cut.missing == 1);

  std::string ip = pb::ip_packet(seg);
  std::string fragment = ip;
  fragment[6] = 0x20;  // more fragments
  decode(pb::kRaw, fragment, DecodeStatus::fragment);
  std::string udp = ip;
  udp[9] = 17;
  decode(pb::kRaw, udp, DecodeStatus::not_tcp);
  decode(pb::kRaw, ip.substr(0, 30), DecodeStatus::malformed);  // total length beyond the frame
}

TEST_CASE("decoder walks IPv6 extension headers") {
  pb::Segment seg;
  seg.src = pb::Address::v6("fd00::1");
  seg.dst = pb::Address::v6("fd00::2");
  seg.sport = 5;
  seg.dport = 6;
  seg.payload = "x";
  std::string ip = pb::ip_packet(seg);
  // Insert an 8-byte hop-by-hop header between the IPv6 header and TCP.
  std::string with_ext = ip.substr(0, 40) + std::string("\x06\x00\x00\x00\x00\x00\x00\x00", 8) + ip.substr(40);
  with_ext[6] = 0;  // next header: hop-by-hop
  std::uint16_t len = static_cast<std::uint16_t>(with_ext.size() - 40);
  with_ext[4] = static_cast<char>(len >> 8);
  with_ext[5] = static_cast<char>(len & 0xff);
  TcpSegment s = decode(pb::kRaw, with_ext);
  CHECK(s.destination_port == 6);
  CHECK(s.payload == "x");
  CHECK(s.destination.to_string() == "fd00::2");
}

TEST_CASE("reassembler: holes wait for gap_timeout, then are reported and skipped") {
  Recorder rec;
  ReassemblyLimits limits;
  limits.gap_timeout_ns = 1'000'000'000;
  TcpReassembler r(limits, rec);
  pb::Conversation conv(pb::Address::v4("10.0.0.1"), 1000, pb::Address::v4("10.0.0.2"), 80);
  std::string buf;
  std::int64_t t = 10'000'000'000;
  for (auto& s : conv.handshake()) r.add(to_segment(s, buf), t);
  r.add(to_segment(conv.client("aaa"), buf), t);
  conv.client("bbb");  // lost
  r.add(to_segment(conv.client("ccc"), buf), t);
  CHECK(rec.stream[0] == "aaa");
  r.advance(t + 2'000'000'000);
  CHECK(rec.stream[0] == "aaa[gap3]ccc");
  r.add(to_segment(conv.client_fin(), buf), t + 2'000'000'001);
  r.add(to_segment(conv.server_fin(), buf), t + 2'000'000'002);
  CHECK(rec.events == std::vector<std::string>{"open", "end0", "end1", "close"});
}

TEST_CASE("reassembler: the per-connection buffer bound turns a hole into a gap instead of growing") {
  Recorder rec;
  ReassemblyLimits limits;
  limits.max_connection_buffer = 10;
  TcpReassembler r(limits, rec);
  pb::Conversation conv(pb::Address::v4("10.0.0.1"), 1000, pb::Address::v4("10.0.0.2"), 80);
  std::string buf;
  for (auto& s : conv.handshake()) r.add(to_segment(s, buf), 1);
  conv.client("lost!");
  for (const char* piece : {"0123", "4567", "89ab", "cdef"}) r.add(to_segment(conv.client(piece), buf), 2);
  CHECK(r.stats().buffered_bytes <= 10);
  CHECK(rec.stream[0].starts_with("[gap5]0123"));
  r.close_all(3);
  CHECK(rec.stream[0] == "[gap5]0123456789abcdef");
}

TEST_CASE("HTTP stream parser slices messages the same way whatever the packet boundaries") {
  struct Collect : HttpMessageListener {
    std::vector<std::string> messages;
    void on_message_begin(HttpStreamParser&, std::int64_t) override {}
    int on_headers(HttpStreamParser&, int, std::uint8_t) override { return 0; }
    void on_message(HttpStreamParser&, ParsedMessage&& m) override {
      messages.push_back(std::string(m.incomplete_reason) + m.bytes);
    }
    void on_unreported_skip(HttpStreamParser&, std::uint64_t) override {}
    void on_upgrade(HttpStreamParser&) override {}
  };
  const std::string a = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
  const std::string b = "GET /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n";
  const std::string stream = a + "\r\n" + b + a;
  for (std::size_t piece : {std::size_t{1}, std::size_t{2}, std::size_t{7}, stream.size()}) {
    CAPTURE(piece);
    Collect c;
    HttpStreamParser p(HttpStreamParser::Side::request, c, true, true, 1 << 20);
    for (auto& part : pb::split(stream, piece)) p.feed(part, 1);
    CHECK(c.messages == std::vector<std::string>{a, b, a});
  }
  SUBCASE("seeking from the middle of a stream finds a request line split across packets") {
    Collect c;
    HttpStreamParser p(HttpStreamParser::Side::request, c, false, true, 1 << 20);
    std::string mid = "tail of a body\r\n" + b;
    for (auto& part : pb::split(mid, 3)) p.feed(part, 1);
    CHECK(c.messages == std::vector<std::string>{b});
  }
}
