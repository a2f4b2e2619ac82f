// libFuzzer: the HTTP/2 capture path, frame parser and HPACK inflater included. The input is
// a client stream and a server stream (after the connection preface, or after an h2c upgrade)
// that a CaptureSession sees as TCP segments of fuzzer-chosen sizes, with an optional lost
// segment and an optional tight memory budget. Random frames, truncated header blocks and
// dynamic table size updates all arrive this way. Invariants, besides no crash: every response
// carries the id of a request emitted before it on the same stream, messages are the HTTP/1.1
// form of HTTP/2 streams (proto h2) within max_message_size, and the frame parser fed directly
// never reports more DATA than it was given.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "capture_session.hpp"
#include "http2_frame_parser.hpp"

using namespace doppel;
using namespace doppel::plugins::raw;

namespace {

IpAddress v4(std::uint8_t last) {
  IpAddress a;
  a.family = 4;
  a.bytes[0] = 10;
  a.bytes[3] = last;
  return a;
}

struct CountingListener : Http2FrameListener {
  std::size_t data = 0;
  void on_headers(Http2FrameParser&, std::uint32_t, std::vector<h2::Field>&& fields, bool, bool,
                  std::int64_t) override {
    std::size_t n = 0;
    for (auto& f : fields) n += f.name.size() + f.value.size();
    if (n > 4096) __builtin_trap();  // the parser's bound on kept fields
  }
  void on_push_promise(Http2FrameParser&, std::uint32_t, std::uint32_t) override {}
  void on_data(Http2FrameParser&, std::uint32_t, std::string_view bytes, bool, std::int64_t) override {
    data += bytes.size();
  }
  void on_rst_stream(Http2FrameParser&, std::uint32_t, std::uint32_t) override {}
  void on_settings(Http2FrameParser& p, bool, std::uint32_t table, std::uint32_t frame_size) override {
    p.peer_settings(table, frame_size);  // its own settings bind itself: exercises table changes
  }
  void on_goaway(Http2FrameParser&, std::uint32_t, std::uint32_t) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  const std::uint8_t mode = data[0];
  const std::size_t mss = 1 + data[1] % 128;
  std::string_view rest(reinterpret_cast<const char*>(data + 4), size - 4);
  const std::size_t split = rest.empty() ? 0 : ((std::size_t{data[2]} << 8) | data[3]) % (rest.size() + 1);
  std::string client(rest.substr(0, split)), server(rest.substr(split));

  {
    // The frame parser alone, one byte at a time when the fuzzer says so.
    CountingListener listener;
    Http2FrameParser parser(listener, 0, 4096, nullptr);
    std::size_t step = (mode & 0x40) ? 1 : rest.size() + 1;
    for (std::size_t i = 0; i < rest.size(); i += step) parser.feed(rest.substr(i, step), 1);
    if (listener.data > rest.size()) __builtin_trap();
    (void)Http2FrameParser::looks_like_frames(rest);
  }

  const bool upgrade = mode & 1;
  if (upgrade) {
    client = "GET /u HTTP/1.1\r\nHost: f\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
             "HTTP2-Settings: AAEAAQAAAAMAAABk\r\n\r\n" +
             std::string(kHttp2Preface) + client;
    server = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n" + server;
  } else {
    client = std::string(kHttp2Preface) + client;
  }

  CaptureConfig config;
  config.track_response = true;
  config.max_message_size = 8192;
  if (mode & 4) config.limits.memory_budget = 6000 + std::size_t{data[1]} * 64;
  std::map<std::string, std::uint32_t> requests;  // id -> stream
  {
    CaptureSession session(config, [&](Message&& m) {
      if (m.payload.size() > config.max_message_size + 4096) __builtin_trap();
      bool h1_upgrade_request = upgrade && m.kind == Kind::request && m.meta.proto.empty();
      // With the preface or the upgrade lost, the connection is not known to be HTTP/2: the
      // HTTP/1.x parser may find requests in what follows (bytes that were on the wire).
      if (m.meta.proto.empty() && (mode & 2)) {
        // It may still be the upgrade request (the loss came later): its answer is stream 1.
        if (m.kind == Kind::request) requests[m.id] = 1;
        return;
      }
      if (!h1_upgrade_request && m.meta.proto != "h2") __builtin_trap();
      if (m.kind == Kind::request) {
        if (requests.count(m.id)) __builtin_trap();  // an id given twice
        requests[m.id] = h1_upgrade_request ? 1 : m.meta.stream_id;
        return;
      }
      auto it = requests.find(m.id);
      if (it == requests.end() || it->second != m.meta.stream_id) __builtin_trap();  // paired across streams
    });
    std::uint32_t cseq = 1000, sseq = 70000;
    std::int64_t ts = 1'700'000'000'000'000'000;
    auto segment = [&](bool from_client, std::uint8_t flags, std::string_view payload, bool lost) {
      TcpSegment s;
      s.source = v4(from_client ? 1 : 2);
      s.destination = v4(from_client ? 2 : 1);
      s.source_port = from_client ? 40000 : 8080;
      s.destination_port = from_client ? 8080 : 40000;
      s.seq = from_client ? cseq : sseq;
      s.ack = from_client ? sseq : cseq;
      s.flags = flags;
      s.payload = payload;
      (from_client ? cseq : sseq) += static_cast<std::uint32_t>(payload.size()) + ((flags & 0x03) ? 1 : 0);
      if (!lost) session.add_segment(s, ts);
      ts += 1'000'000;
    };
    segment(true, 0x02, "", false);
    segment(false, 0x12, "", false);
    segment(true, 0x10, "", false);
    // Client and server segments alternate, as a request/response exchange mostly does.
    std::size_t lost_at = (mode & 2) ? data[2] % 16 : ~std::size_t{0};
    std::size_t c = 0, s = 0, n = 0;
    while (c < client.size() || s < server.size()) {
      if (c < client.size()) {
        segment(true, 0x18, std::string_view(client).substr(c, mss), n++ == lost_at);
        c += mss;
      }
      if (s < server.size()) {
        segment(false, 0x18, std::string_view(server).substr(s, mss), n++ == lost_at);
        s += mss;
      }
    }
    segment(true, 0x11, "", false);
    segment(false, 0x11, "", false);
    session.finish(ts);
  }
  return 0;
}
