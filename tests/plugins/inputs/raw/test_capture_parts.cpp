// The capture path's parts on their own: decoder, reassembler, HTTP stream parser.
#include <doctest/doctest.h>

#include <pcap/pcap.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>

#include "capture_file.hpp"
#include "capture_session.hpp"
#include "ordered_emitter.hpp"
#include "http_stream_parser.hpp"
#include "packet_decoder.hpp"
#include "pcap_builder.hpp"
#include "raw_input.hpp"
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
  void on_data(TcpConnection&, int d, std::string_view bytes, std::int64_t, const SegmentPosition&) override {
    stream[d] += bytes;
  }
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

TEST_CASE("connections are split between threads: both directions alike, evenly, the same choice for the same frames") {
  constexpr std::size_t kThreads = 3;
  ConnectionSharder sharder(kThreads), other_thread(kThreads);
  std::size_t connections[kThreads] = {};
  std::string storage;
  for (std::uint16_t port = 30000; port < 30300; ++port) {
    pb::Conversation v4(pb::Address::v4("127.0.0.1"), port, pb::Address::v4("127.0.0.1"), 8080);
    pb::Conversation v6(pb::Address::v6("fd00::1"), port, pb::Address::v6("fd00::2"), 443);
    for (auto* conv : {&v4, &v6}) {
      TcpSegment request = to_segment(conv->client("GET"), storage);
      std::size_t owner = sharder.owner(request, 100);
      REQUIRE(owner < kThreads);
      CHECK(other_thread.owner(request, 100) == owner);
      TcpSegment response = to_segment(conv->server("HTTP/1.1 200 OK"), storage);
      CHECK(sharder.owner(response, 200) == owner);
      CHECK(other_thread.owner(response, 200) == owner);
      ++connections[owner];
    }
  }
  // 600 connections of equal size: a third each, but for the few sharing a hash bucket.
  for (std::size_t n : connections) CHECK((n >= 190 && n <= 210));
  ConnectionSharder alone(1);
  CHECK(alone.owner(to_segment(pb::Conversation(pb::Address::v4("10.0.0.1"), 1, pb::Address::v4("10.0.0.2"), 2).client("x"), storage), 60) == 0);
}

TEST_CASE("connections that end and are replaced stay split evenly between threads") {
  // A load test against nginx: 20 keep-alive connections take turns, nginx closes each after
  // as many requests, so they all end together and 20 new ones start. Each generation must
  // be split evenly too: a split by all load so far gives a whole generation to the thread
  // that is behind, while the other one idles.
  constexpr std::size_t kThreads = 2;
  ConnectionSharder sharder(kThreads);
  std::string storage;
  std::uint16_t next_port = 20000;
  {  // a first client, alone for a while: one thread is ahead when the load test starts
    pb::Conversation first(pb::Address::v4("10.0.0.9"), 19999, pb::Address::v4("10.0.0.2"), 80);
    for (auto& s : first.handshake()) sharder.owner(to_segment(s, storage), 60);
    for (int i = 0; i < 100; ++i) sharder.owner(to_segment(first.client("GET / HTTP/1.1\r\n\r\n"), storage), 100);
    sharder.owner(to_segment(first.client_fin(), storage), 60);
    sharder.owner(to_segment(first.server_fin(), storage), 60);
  }
  for (int generation = 0; generation < 6; ++generation) {
    std::vector<pb::Conversation> live;
    for (int i = 0; i < 20; ++i) {
      live.emplace_back(pb::Address::v4("10.0.0.1"), next_port++, pb::Address::v4("10.0.0.2"), 80);
      for (auto& s : live.back().handshake()) sharder.owner(to_segment(s, storage), 60);
    }
    std::uint64_t frames[kThreads] = {};
    for (int round = 0; round < 25 + generation; ++round)  // some generations longer than others
      for (auto& conv : live) {
        ++frames[sharder.owner(to_segment(conv.client("GET / HTTP/1.1\r\n\r\n"), storage), 100)];
        ++frames[sharder.owner(to_segment(conv.server("HTTP/1.1 204 No Content\r\n\r\n"), storage), 100)];
      }
    for (auto& conv : live) {
      sharder.owner(to_segment(conv.client_fin(), storage), 60);
      sharder.owner(to_segment(conv.server_fin(), storage), 60);
    }
    CAPTURE(generation);
    CAPTURE(frames[0]);
    CAPTURE(frames[1]);
    // 10 connections each, or 11 and 9 when a new connection lands in the hash bucket of an
    // earlier one, which keeps that bucket's thread (the hash seed is random per process).
    std::uint64_t all = frames[0] + frames[1];
    for (std::uint64_t n : frames) CHECK((n * 20 >= all * 9 && n * 20 <= all * 11));
  }
}

TEST_CASE("ordered emitter: windows leave in order, each thread's part in thread order, whatever the pace") {
  std::vector<std::string> out;
  std::vector<std::size_t> emits;
  OrderedEmitter emitter(2, [&](std::vector<doppel::MessagePtr>& messages) {
    emits.push_back(messages.size());
    for (auto& m : messages) out.push_back(m->id);
  });
  auto part = [](std::size_t reader, std::uint64_t window, int count) {
    std::vector<doppel::MessagePtr> v;
    for (int i = 0; i < count; ++i)
      v.push_back(doppel::share(doppel::Message(doppel::Kind::request,
                                                std::to_string(reader) + "/" + std::to_string(window) + "/" + std::to_string(i),
                                                0, "")));
    return v;
  };
  // Reader 1 runs three windows ahead: nothing leaves until reader 0 catches up.
  for (std::uint64_t w = 0; w < 3; ++w) {
    auto v = part(1, w, 2);
    emitter.deliver(1, w, v);
    CHECK(v.empty());
  }
  CHECK(out.empty());
  auto w0 = part(0, 0, 1);
  emitter.deliver(0, 0, w0);
  CHECK(out == std::vector<std::string>{"0/0/0", "1/0/0", "1/0/1"});
  std::vector<doppel::MessagePtr> none;
  emitter.deliver(0, 1, none);  // an empty window counts as delivered
  auto w2 = part(0, 2, 1);
  emitter.deliver(0, 2, w2);
  CHECK(out == std::vector<std::string>{"0/0/0", "1/0/0", "1/0/1", "1/1/0", "1/1/1", "0/2/0", "1/2/0", "1/2/1"});
  // Reader 1 stops: reader 0's later windows no longer wait for it.
  emitter.finish(1);
  auto w3 = part(0, 3, 2);
  emitter.deliver(0, 3, w3);
  CHECK(out.size() == 10);
  CHECK(out.back() == "0/3/1");
  emitter.finish(0);
  CHECK(out.size() == 10);
  CHECK(emits == std::vector<std::size_t>{3, 2, 3, 2});  // one hand-off per collection
}

TEST_CASE("ordered emitter: a thread far ahead waits, and threads at full speed lose and reorder nothing") {
  std::mutex m;
  std::vector<std::string> out;
  OrderedEmitter emitter(3, [&](std::vector<doppel::MessagePtr>& messages) {
    std::lock_guard lock(m);
    for (auto& msg : messages) out.push_back(msg->id);
  });
  constexpr std::uint64_t kWindows = 3 * OrderedEmitter::kSlots + 7;
  auto id = [](std::size_t reader, std::uint64_t window, int i) {
    char text[32];
    std::snprintf(text, sizeof text, "%06llu/%zu/%d", static_cast<unsigned long long>(window), reader, i);
    return std::string(text);
  };
  std::atomic<std::uint64_t> ahead_delivered{0};
  {
    std::vector<std::jthread> readers;
    for (std::size_t r = 1; r < 3; ++r)
      readers.emplace_back([&, r] {
        for (std::uint64_t w = 0; w < kWindows; ++w) {
          std::vector<doppel::MessagePtr> v;
          for (int i = 0; i < static_cast<int>((w + r) % 4); ++i)
            v.push_back(doppel::share(doppel::Message(doppel::Kind::request, id(r, w, i), 0, "")));
          emitter.deliver(r, w, v);
          if (r == 1) ahead_delivered = w + 1;
        }
        emitter.finish(r);
      });
    // Reader 0 has not started: the others get at most kSlots windows ahead of it.
    for (int i = 0; i < 200 && ahead_delivered < OrderedEmitter::kSlots; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(ahead_delivered == OrderedEmitter::kSlots);
    {
      std::lock_guard lock(m);
      CHECK(out.empty());
    }
    for (std::uint64_t w = 0; w < kWindows; ++w) {
      std::vector<doppel::MessagePtr> v{doppel::share(doppel::Message(doppel::Kind::request, id(0, w, 0), 0, ""))};
      emitter.deliver(0, w, v);
    }
    emitter.finish(0);
  }
  std::size_t expected = kWindows;
  for (std::size_t r = 1; r < 3; ++r)
    for (std::uint64_t w = 0; w < kWindows; ++w) expected += (w + r) % 4;
  REQUIRE(out.size() == expected);
  CHECK(std::is_sorted(out.begin(), out.end()));  // window, then reader, then the reader's order
}

TEST_CASE("the generated filter's own verdict is BPF's on every frame it decides") {
  using namespace pb;
  std::vector<Segment> segments;
  for (auto [client, server] : {std::pair{Address::v4("10.0.0.1"), Address::v4("10.0.0.2")},
                                std::pair{Address::v6("fd00::1"), Address::v6("fd00::2")}})
    for (std::uint16_t server_port : {80, 8080, 9999}) {
      Conversation conv(client, 40000, server, server_port);
      for (auto& s : conv.handshake()) segments.push_back(s);  // SYN, SYN-ACK, pure ACK
      segments.push_back(conv.client("GET / HTTP/1.1\r\n\r\n"));
      segments.push_back(conv.server("HTTP/1.1 204 No Content\r\n\r\n"));
      segments.push_back(conv.raw(true, conv.client_seq(), "", flag::ack));  // a pure ACK mid-connection
      segments.push_back(conv.client_fin());
      segments.push_back(conv.server_fin());
      segments.push_back(conv.client_rst());
    }
  std::size_t decided = 0;
  for (int link : {kEthernet, kSll, kSll2, kRaw, kNull})
    for (bool vlan : {false, true})
      for (std::uint32_t snaplen : {262144u, 54u}) {  // 54: Ethernet + IPv4 + TCP headers, payload cut
        if ((vlan || snaplen < 1000) && link != kEthernet) continue;
        Capture capture(link, snaplen);
        for (std::size_t i = 0; i < segments.size(); ++i) capture.add(segments[i], 1'700'000'000'000'000'000 + i, vlan);
        std::string path = (std::filesystem::temp_directory_path() / ("doppel-verdict-" + std::to_string(getpid()) + ".pcap")).string();
        capture.write_pcap(path);
        std::string error;
        auto file = CaptureFile::open(path, error);
        REQUIRE(file);
        for (auto ports : {std::vector<std::uint16_t>{}, std::vector<std::uint16_t>{80}, std::vector<std::uint16_t>{80, 8080}})
          for (bool requests_only : {false, true}) {
            if (requests_only && ports.empty()) continue;
            GeneratedFilter generated{ports, "", requests_only};
            FrameFilter bpf(*file, generated.expression_for(file->link_type()));
            auto reader = file->reader(error);
            REQUIRE(reader);
            CapturedFrame frame;
            while (reader->next(frame)) {
              TcpSegment segment;
              if (decode_packet(file->link_type(), frame.data, frame.caplen, frame.wirelen, segment) != DecodeStatus::tcp)
                continue;
              auto verdict = generated.verdict(file->link_type(), frame, segment);
              if (!verdict) continue;
              ++decided;
              CAPTURE(link);
              CAPTURE(snaplen);
              CAPTURE(segment.flags);
              CAPTURE(segment.destination_port);
              CHECK(*verdict == bpf.matches(frame));
            }
          }
        std::filesystem::remove(path);
      }
  // IPv4 without a VLAN tag on Ethernet (twice: cut and whole), SLL, SLL2 and raw IP: 5 files,
  // 27 frames each, 5 rules.
  CHECK(decided == 5 * 27 * 5);
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
      messages.push_back(std::string(m.incomplete_reason) + std::string(m.wire()));
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
