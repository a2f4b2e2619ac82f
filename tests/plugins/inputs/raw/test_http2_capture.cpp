// HTTP/2 capture (issue 18, item 1): connections with prior knowledge and Upgrade: h2c decoded
// per stream into HTTP/1.1-form messages, driven through CaptureSession with TCP segments that
// carry real frames. Header blocks are made by libnghttp2's deflater (never by hand), so the
// HPACK dynamic table is exercised as a real encoder uses it.
#include <doctest/doctest.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "capture_session.hpp"
#include "doppel/http2.hpp"
#include "http2_frame_parser.hpp"
#include "pcap_builder.hpp"

using namespace doppel;
using namespace doppel::plugins::raw;
namespace pb = pcap_builder;
using namespace std::string_literals;

namespace {

const pb::Address kClient = pb::Address::v4("10.2.0.1");
const pb::Address kServer = pb::Address::v4("10.2.0.2");
constexpr std::int64_t kT0 = 1'700'000'000'000'000'000;
constexpr std::int64_t kMs = 1'000'000;

using Fields = std::vector<std::pair<std::string, std::string>>;

// One endpoint's HPACK encoder (libnghttp2's deflater: its dynamic table grows as a real
// encoder's does, so later blocks refer to earlier ones).
class Encoder {
 public:
  explicit Encoder(std::size_t table = 4096) { REQUIRE(nghttp2_hd_deflate_new(&deflater_, table) == 0); }
  ~Encoder() { nghttp2_hd_deflate_del(deflater_); }
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;
  std::string block(const Fields& fields) {
    std::vector<nghttp2_nv> nva;
    for (auto& [name, value] : fields)
      nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                     reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                     NGHTTP2_NV_FLAG_NONE});
    std::string out(nghttp2_hd_deflate_bound(deflater_, nva.data(), nva.size()), '\0');
    auto n = nghttp2_hd_deflate_hd(deflater_, reinterpret_cast<std::uint8_t*>(out.data()), out.size(), nva.data(),
                                   nva.size());
    REQUIRE(n >= 0);
    out.resize(static_cast<std::size_t>(n));
    return out;
  }

 private:
  nghttp2_hd_deflater* deflater_ = nullptr;
};

enum : std::uint8_t { kData, kHeaders, kPriority, kRst, kSettings, kPush, kPing, kGoaway, kWindow, kContinuation };
constexpr std::uint8_t kEndStream = 0x1, kEndHeaders = 0x4, kPadded = 0x8, kPriorityFlag = 0x20;

std::string frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream, std::string_view payload) {
  return pb::http2_frame(type, flags, stream, payload);
}
std::string settings() { return frame(kSettings, 0, 0, ""); }
std::string settings_ack() { return frame(kSettings, 1, 0, ""); }
std::string headers(std::uint32_t stream, const std::string& block, bool end_stream) {
  return frame(kHeaders, static_cast<std::uint8_t>(kEndHeaders | (end_stream ? kEndStream : 0)), stream, block);
}
std::string data(std::uint32_t stream, std::string_view bytes, bool end_stream) {
  return frame(kData, end_stream ? kEndStream : 0, stream, bytes);
}

const std::string kPreface(kHttp2Preface);

// Bytes of frames in order. `<<` (unlike `+`) evaluates its operands left to right (C++17), so
// the header blocks in one segment are encoded in the order they are sent.
struct Wire {
  std::string bytes;
  operator std::string_view() const { return bytes; }
};
Wire operator<<(Wire w, std::string_view more) {
  w.bytes.append(more);
  return w;
}

// Feeds segments to a CaptureSession and keeps what it emits.
struct Driver {
  std::vector<std::shared_ptr<Message>> messages;
  CaptureSession session;
  std::int64_t t = kT0;
  explicit Driver(CaptureConfig config = default_config())
      : session(std::move(config),
                CaptureSession::EmitShared(
                    [this](std::shared_ptr<Message>&& m) { messages.push_back(std::move(m)); })) {}
  static CaptureConfig default_config() {
    CaptureConfig c;
    c.track_response = true;
    return c;
  }
  void add(const pb::Segment& s) {
    std::string ip = pb::ip_packet(s);
    session.add_frame(pb::kRaw, reinterpret_cast<const std::uint8_t*>(ip.data()), ip.size(), ip.size(), t);
    t += kMs;
  }
  void add(const std::vector<pb::Segment>& segments) {
    for (auto& s : segments) add(s);
  }
  void finish() { session.finish(t); }
  CaptureStats stats() const { return session.stats(); }
  std::uint64_t dropped(DropReason r) const { return stats().dropped[static_cast<std::size_t>(r)]; }
  std::uint64_t drops() const {
    std::uint64_t n = 0;
    for (auto d : stats().dropped) n += d;
    return n;
  }
  const Message* find(Kind kind, std::uint32_t stream) const {
    for (auto& m : messages)
      if (m->kind == kind && m->meta.stream_id == stream) return m.get();
    return nullptr;
  }
};

Fields get(const std::string& path) {
  return {{":method", "GET"}, {":scheme", "http"}, {":authority", "svc:8080"}, {":path", path}, {"user-agent", "t/1"}};
}
Fields ok(std::string_view length, std::string_view type = "text/plain") {
  return {{":status", "200"}, {"content-type", std::string(type)}, {"content-length", std::string(length)}};
}

}  // namespace

TEST_CASE("h2 prior knowledge: interleaved streams, CONTINUATION, padding, PRIORITY and control frames") {
  Driver d;
  pb::Conversation c(kClient, 40001, kServer, 8080);
  Encoder client, server;
  d.add(c.handshake());
  // The server speaks first (its preface may precede the client's).
  d.add(c.server(settings()));
  std::string h1 = client.block(get("/one"));
  Fields post = {{":method", "POST"}, {":scheme", "http"}, {":authority", "svc:8080"}, {":path", "/two"},
                 {"content-type", "application/json"}, {"x-long", std::string(300, 'x')}};
  std::string h3 = client.block(post);
  // Stream 3's block split over HEADERS (with priority and padding) and two CONTINUATIONs.
  std::string prio_padded;
  prio_padded.push_back(static_cast<char>(4));  // pad length
  prio_padded.append("\x00\x00\x00\x01\x10", 5);  // depends on stream 1, weight 17
  prio_padded.append(h3.substr(0, 10));
  prio_padded.append(4, '\0');
  std::string first = kPreface + settings() + frame(kWindow, 0, 0, std::string("\x00\x01\x00\x00", 4)) +
                      headers(1, h1, true) +
                      frame(kHeaders, kPadded | kPriorityFlag, 3, prio_padded) +
                      frame(kContinuation, 0, 3, h3.substr(10, 100));
  // The preface split across two segments.
  d.add(c.client(first.substr(0, 11)));
  d.add(c.client(first.substr(11)));
  std::string padded_data;
  padded_data.push_back(static_cast<char>(3));
  padded_data.append("{\"a\":");
  padded_data.append(3, '\0');
  d.add(c.client(frame(kContinuation, kEndHeaders, 3, h3.substr(110)) +
                 frame(kPriority, 0, 5, std::string("\0\0\0\0\x07", 5)) +
                 frame(kData, kPadded, 3, padded_data) + frame(0xfa, 0, 0, "unknown type, ignored")));
  d.add(c.server(Wire() << settings_ack() << headers(3, server.block(ok("2", "application/json")), false)
      << headers(1, server.block(ok("5")), false) << data(3, "{}", true)));
  d.add(c.client(settings_ack() + frame(kPing, 0, 0, "12345678") + data(3, "1}", true)));
  d.add(c.server(frame(kPing, 1, 0, "12345678") + data(1, "hel", false)));
  d.add(c.server(data(1, "lo", true)));
  d.add(c.client_fin());
  d.add(c.server_fin());
  d.finish();

  auto s = d.stats();
  CHECK(s.h2.connections == 1);
  CHECK(s.h2.streams == 2);
  CHECK(s.requests == 2);
  CHECK(s.responses == 2);
  CHECK(s.early_responses == 1);  // stream 3 was answered before its request's END_STREAM
  CHECK(d.drops() == 0);
  CHECK(s.h2.streams_abandoned == 0);
  REQUIRE(d.messages.size() == 4);
  const Message* req1 = d.find(Kind::request, 1);
  const Message* req3 = d.find(Kind::request, 3);
  const Message* res1 = d.find(Kind::response, 1);
  const Message* res3 = d.find(Kind::response, 3);
  REQUIRE((req1 && req3 && res1 && res3));
  CHECK(req1->payload == "GET /one HTTP/1.1\r\nhost: svc:8080\r\nuser-agent: t/1\r\n\r\n");
  CHECK(req3->payload == "POST /two HTTP/1.1\r\nhost: svc:8080\r\ncontent-type: application/json\r\nx-long: " +
                             std::string(300, 'x') + "\r\ncontent-length: 7\r\n\r\n{\"a\":1}");
  CHECK(res3->payload == "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}");
  CHECK(res1->payload == "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello");
  CHECK(req1->id == res1->id);
  CHECK(req3->id == res3->id);
  CHECK(req1->id != req3->id);
  for (auto& m : d.messages) {
    CHECK(m->meta.proto == "h2");
    CHECK(m->meta.connection_id != 0);
  }
  CHECK(req1->meta.source.address == "10.2.0.1");
  CHECK(req1->meta.destination.port == 8080);
  CHECK(res1->meta.source.address == "10.2.0.2");
  // The early response goes out after its request; latency never negative.
  auto at = [&](const Message* m) {
    auto same = [&](auto& p) { return p.get() == m; };
    return std::find_if(d.messages.begin(), d.messages.end(), same) - d.messages.begin();
  };
  CHECK(at(req3) < at(res3));
  CHECK(res1->latency_ns > 0);
  CHECK(res1->timestamp_ns > req1->timestamp_ns);
}

TEST_CASE("h2: trailers, interim 1xx, HEAD, and a response on a stream with no request") {
  Driver d;
  pb::Conversation c(kClient, 40002, kServer, 50051);
  Encoder client, server;
  d.add(c.handshake());
  Fields grpc = {{":method", "POST"}, {":scheme", "http"}, {":authority", "g:50051"}, {":path", "/pkg.Svc/Call"},
                 {"content-type", "application/grpc"}, {"te", "trailers"}};
  Fields head = {{":method", "HEAD"}, {":scheme", "http"}, {":authority", "g:50051"}, {":path", "/big"}};
  d.add(c.client(Wire() << kPreface << settings() << headers(1, client.block(grpc), false)
      << data(1, std::string("\0\0\0\0\x02\x08\x01", 7), true) << headers(3, client.block(head), true)));
  d.add(c.server(Wire() << settings() << headers(1, server.block({{":status", "100"}}), false)
      << headers(1, server.block({{":status", "200"}, {"content-type", "application/grpc"}}), false)
      << data(1, std::string("\0\0\0\0\x02\x08\x02", 7), false)
      << headers(1, server.block({{"grpc-status", "0"}, {"grpc-message", ""}}), true)
      << headers(3, server.block(ok("123456")), true) << headers(9, server.block(ok("0")), true)));
  d.finish();
  auto s = d.stats();
  CHECK(s.interim_responses == 1);
  CHECK(d.dropped(DropReason::unmatched_response) == 1);
  CHECK(d.drops() == 1);
  REQUIRE(d.messages.size() == 4);
  const Message* res1 = d.find(Kind::response, 1);
  const Message* res3 = d.find(Kind::response, 3);
  REQUIRE((res1 && res3));
  CHECK(res1->payload ==
        "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n7\r\n"s +
                             std::string("\0\0\0\0\x02\x08\x02", 7) +
                             "\r\n0\r\ngrpc-status: 0\r\ngrpc-message: \r\n\r\n");
  // HEAD: the content-length describes a body that is not sent.
  CHECK(res3->payload == "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 123456\r\n\r\n");
  CHECK(d.find(Kind::request, 1)->id == res1->id);
}

TEST_CASE("h2: RST_STREAM mid-body abandons that stream only; GOAWAY is counted") {
  Driver d;
  pb::Conversation c(kClient, 40003, kServer, 8080);
  Encoder client, server;
  d.add(c.handshake());
  Fields put = {{":method", "PUT"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/upload"}};
  d.add(c.client(Wire() << kPreface << settings() << headers(1, client.block(put), false) << data(1, "part one", false)
      << headers(3, client.block(get("/other")), true)));
  d.add(c.server(Wire() << settings() << headers(3, server.block(ok("2")), false)));
  d.add(c.client(frame(kRst, 0, 1, std::string("\0\0\0\x08", 4))));  // CANCEL
  d.add(c.server(data(3, "ok", true) + frame(kGoaway, 0, 0, std::string("\0\0\0\x03\0\0\0\0", 8))));
  // A response begun, then reset by the server.
  d.add(c.client(headers(5, client.block(get("/reset-me")), true)));
  d.add(c.server(Wire() << headers(5, server.block(ok("100")), false) << data(5, "partial", false)
      << frame(kRst, 0, 5, std::string("\0\0\0\x02", 4))));
  d.finish();
  auto s = d.stats();
  CHECK(s.h2.resets == 2);
  CHECK(s.h2.goaways == 1);
  CHECK(d.dropped(DropReason::stream_reset) == 2);  // the upload, and /reset-me's response
  CHECK(d.drops() == 2);
  CHECK(s.requests == 2);  // /other and /reset-me
  CHECK(s.responses == 1);
  CHECK(d.find(Kind::request, 1) == nullptr);
  REQUIRE(d.find(Kind::response, 3) != nullptr);
  CHECK(d.find(Kind::response, 3)->id == d.find(Kind::request, 3)->id);
}

TEST_CASE("h2: server push is inflated (HPACK in step) but not emitted") {
  Driver d;
  pb::Conversation c(kClient, 40004, kServer, 8080);
  Encoder client, server;
  d.add(c.handshake());
  d.add(c.client(Wire() << kPreface << settings() << headers(1, client.block(get("/index.html")), true)));
  std::string promise("\0\0\0\x02", 4);
  // The promised request's fields enter the server encoder's dynamic table: the response's
  // block after it refers to them, so skipping the promise's block would break HPACK.
  promise += server.block({{":method", "GET"}, {":scheme", "http"}, {":authority", "svc:8080"}, {":path", "/style.css"},
                           {"x-pushed-by", "server"}});
  d.add(c.server(Wire() << settings() << frame(kPush, kEndHeaders, 1, promise)
      << headers(2, server.block({{":status", "200"}, {"x-pushed-by", "server"}, {"content-length", "3"}}), false)
      << data(2, "css", true)));
  d.add(c.server(Wire()
      << headers(1, server.block({{":status", "200"}, {"x-pushed-by", "server"}, {"content-length", "4"}}), false)
      << data(1, "html", true)));
  d.finish();
  CHECK(d.dropped(DropReason::pushed) == 1);
  CHECK(d.drops() == 1);
  REQUIRE(d.messages.size() == 2);
  CHECK(d.find(Kind::response, 1)->payload ==
        "HTTP/1.1 200 OK\r\nx-pushed-by: server\r\ncontent-length: 4\r\n\r\nhtml");
  CHECK(d.find(Kind::response, 2) == nullptr);
}

TEST_CASE("h2c: Upgrade answered by 101; the response on stream 1 gets the upgrade request's id") {
  Driver d;
  pb::Conversation c(kClient, 40005, kServer, 8080);
  Encoder client, server;
  d.add(c.handshake());
  std::string upgrade =
      "GET /first HTTP/1.1\r\nHost: svc:8080\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
      "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n";
  d.add(c.client(upgrade));
  // The 101 and the server's first frames in one segment.
  d.add(c.server(Wire() << "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
      << settings() << headers(1, server.block(ok("5")), false)));
  d.add(c.client(Wire() << kPreface << settings() << settings_ack() << headers(3, client.block(get("/second")), true)));
  d.add(c.server(Wire() << data(1, "first", true) << settings_ack() << headers(3, server.block(ok("6")), false)
      << data(3, "second", true)));
  d.add(c.client_fin());
  d.add(c.server_fin());
  d.finish();
  auto s = d.stats();
  CHECK(s.upgrades == 1);
  CHECK(s.interim_responses == 1);  // the 101
  CHECK(s.h2.connections == 1);
  CHECK(s.requests == 2);
  CHECK(s.responses == 2);
  CHECK(d.drops() == 0);
  REQUIRE(d.messages.size() == 4);
  const Message& req1 = *d.messages[0];
  CHECK(req1.kind == Kind::request);
  CHECK(req1.payload == upgrade);  // as on the wire: HTTP/1.1
  CHECK(req1.meta.proto.empty());
  const Message* res1 = d.find(Kind::response, 1);
  REQUIRE(res1 != nullptr);
  CHECK(res1->id == req1.id);
  CHECK(res1->meta.proto == "h2");
  CHECK(res1->payload == "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nfirst");
  REQUIRE(d.find(Kind::request, 3) != nullptr);
  CHECK(d.find(Kind::request, 3)->id == d.find(Kind::response, 3)->id);
}

TEST_CASE("h2c refused: a 200 to an Upgrade: h2c request keeps the connection HTTP/1.1") {
  Driver d;
  pb::Conversation c(kClient, 40006, kServer, 8080);
  d.add(c.handshake());
  d.add(c.client("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                 "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"));
  d.add(c.server("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno"));
  d.add(c.client("GET /again HTTP/1.1\r\nHost: a\r\n\r\n"));
  d.add(c.server("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes"));
  d.finish();
  CHECK(d.stats().h2.connections == 0);
  CHECK(d.stats().requests == 2);
  CHECK(d.stats().responses == 2);
  REQUIRE(d.messages.size() == 4);
  CHECK(d.messages[3]->id == d.messages[2]->id);
  CHECK(d.messages[3]->meta.proto.empty());
}

TEST_CASE("h2 mid-stream start: counted (h2.midstream), skipped whole, no guessed headers") {
  Driver d;
  pb::Conversation c(kClient, 40007, kServer, 8080);
  Encoder client, server;
  // The connection's start (and the blocks that filled both dynamic tables) were not captured.
  client.block(get("/before"));
  server.block(ok("1"));
  c.handshake();
  (void)c.client(kPreface + settings());
  d.add(c.client(headers(5, client.block(get("/before")), true)));
  d.add(c.server(Wire() << headers(5, server.block(ok("1")), false) << data(5, "x", true)));
  d.add(c.client(headers(7, client.block(get("/later")), true)));
  d.finish();
  CHECK(d.stats().h2.midstream == 1);
  CHECK(d.stats().h2.connections == 0);
  CHECK(d.messages.empty());
}

TEST_CASE("h2: a lost segment stops decoding its connection; the streams given up are counted") {
  Driver d;
  pb::Conversation c(kClient, 40008, kServer, 8080);
  Encoder client, server;
  d.add(c.handshake());
  d.add(c.client(Wire() << kPreface << settings() << headers(1, client.block(get("/a")), true)));
  d.add(c.server(Wire() << settings() << headers(1, server.block(ok("1")), false) << data(1, "a", true)));
  d.add(c.client(headers(3, client.block(get("/b")), true)));
  (void)c.client(headers(5, client.block(get("/lost")), true));  // never captured
  d.add(c.client(headers(7, client.block(get("/after")), true)));
  d.add(c.server(Wire() << headers(3, server.block(ok("1")), false) << data(3, "b", true)));
  d.add(c.client_fin());
  d.add(c.server_fin());
  d.finish();
  auto s = d.stats();
  CHECK(s.h2.gaps == 1);
  // Stream 1 was done; stream 3's request was emitted, its response is lost with the connection.
  CHECK(s.requests == 2);
  CHECK(s.responses == 1);
  CHECK(s.h2.streams_abandoned == 1);
  CHECK(s.responses_missing == 1);
  CHECK(d.find(Kind::request, 7) == nullptr);
  CHECK(d.find(Kind::response, 3) == nullptr);
}

TEST_CASE("h2: a header block HPACK refuses stops decoding; counted, nothing guessed") {
  Driver d;
  pb::Conversation c(kClient, 40009, kServer, 8080);
  Encoder client;
  d.add(c.handshake());
  std::string body_upload =
      client.block({{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/up"}});
  // An indexed field far past both tables (index 1000): no encoder sends that.
  std::string bad("\xff\xe9\x07", 3);
  d.add(c.client(kPreface + settings() + headers(1, body_upload, false) + data(1, "abc", false) +
                 headers(3, bad, true)));
  d.finish();
  auto s = d.stats();
  CHECK(s.h2.hpack_errors == 1);
  CHECK(d.dropped(DropReason::decode_error) == 1);  // the upload in progress
  CHECK(s.h2.streams_abandoned == 1);
  CHECK(d.messages.empty());
}

TEST_CASE("h2: malformed frames and malformed messages are counted with their reason") {
  SUBCASE("DATA padding longer than the frame: a frame error ends the connection") {
    Driver d;
    pb::Conversation c(kClient, 40010, kServer, 8080);
    Encoder client;
    d.add(c.handshake());
    d.add(c.client(Wire() << kPreface << settings() << headers(1, client.block(get("/x")), false)
        << frame(kData, kPadded | kEndStream, 1, std::string("\x09" "abc", 4))));
    d.finish();
    CHECK(d.stats().h2.frame_errors == 1);
    CHECK(d.dropped(DropReason::decode_error) == 1);
    CHECK(d.messages.empty());
  }
  SUBCASE("a frame over SETTINGS_MAX_FRAME_SIZE") {
    Driver d;
    pb::Conversation c(kClient, 40011, kServer, 8080);
    Encoder client;
    d.add(c.handshake());
    d.add(c.client(Wire() << kPreface << settings() << headers(1, client.block(get("/x")), false)));
    d.add(c.client(data(1, std::string(20000, 'z'), true)));
    d.finish();
    CHECK(d.stats().h2.frame_errors == 1);
    CHECK(d.messages.empty());
  }
  SUBCASE("a field name in upper case and a content-length the DATA contradicts") {
    Driver d;
    pb::Conversation c(kClient, 40012, kServer, 8080);
    Encoder client, server;
    d.add(c.handshake());
    Fields upper = get("/u");
    upper.push_back({"X-Upper", "1"});
    d.add(c.client(Wire() << kPreface << settings() << headers(1, client.block(upper), true)
        << headers(3, client.block(get("/fine")), true)));
    d.add(c.server(Wire() << settings() << headers(1, server.block(ok("1")), false) << data(1, "1", true)
        << headers(3, server.block(ok("10")), false) << data(3, "short", true)));
    d.finish();
    // Request 1, the response that went with it, and response 3.
    CHECK(d.dropped(DropReason::malformed) == 3);
    CHECK(d.stats().requests == 1);
    CHECK(d.stats().responses == 0);
    CHECK(d.stats().h2.frame_errors == 0);
    CHECK(d.drops() == 3);
  }
}

TEST_CASE("h2: unfinished streams at the end of the capture, max_message_size and track_response off") {
  SUBCASE("unfinished") {
    Driver d;
    pb::Conversation c(kClient, 40013, kServer, 8080);
    Encoder client, server;
    d.add(c.handshake());
    d.add(c.client(Wire() << kPreface << settings() << headers(1, client.block(get("/slow")), true)
        << headers(3, client.block({{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/s"}}),
                   false)
        << data(3, "chunk", false)));
    d.add(c.server(Wire() << settings() << headers(1, server.block(ok("100")), false) << data(1, "partial", false)));
    d.finish();
    CHECK(d.dropped(DropReason::unfinished) == 2);  // request 3 and response 1
    CHECK(d.stats().h2.streams_abandoned == 2);
    CHECK(d.stats().requests == 1);
  }
  SUBCASE("too large") {
    CaptureConfig config = Driver::default_config();
    config.max_message_size = 1000;
    Driver d(config);
    pb::Conversation c(kClient, 40014, kServer, 8080);
    Encoder client, server;
    d.add(c.handshake());
    d.add(c.client(Wire() << kPreface << settings() << headers(1, client.block(get("/big")), true)));
    d.add(c.server(Wire() << settings() << headers(1, server.block(ok("1500")), false)
        << data(1, std::string(1500, 'b'), true)));
    d.add(c.client(headers(3, client.block(get("/small")), true)));
    d.add(c.server(Wire() << headers(3, server.block(ok("1")), false) << data(3, "s", true)));
    d.finish();
    CHECK(d.dropped(DropReason::too_large) == 1);
    CHECK(d.stats().requests == 2);
    CHECK(d.stats().responses == 1);
  }
  SUBCASE("track_response off: requests only") {
    CaptureConfig config;
    Driver d(config);
    pb::Conversation c(kClient, 40015, kServer, 8080);
    Encoder client, server;
    d.add(c.handshake());
    d.add(c.client(Wire() << kPreface << settings() << headers(1, client.block(get("/r")), true)));
    d.add(c.server(Wire() << settings() << headers(1, server.block(ok("1")), false) << data(1, "r", true)));
    d.finish();
    CHECK(d.stats().requests == 1);
    CHECK(d.stats().responses == 0);
    CHECK(d.drops() == 0);
    REQUIRE(d.messages.size() == 1);
    CHECK(d.messages[0]->meta.stream_id == 1);
  }
}

TEST_CASE("h2: SETTINGS_HEADER_TABLE_SIZE: a larger table is followed, a smaller one after its ACK") {
  Driver d;
  pb::Conversation c(kClient, 40016, kServer, 8080);
  // The client allows the server's encoder 64 KiB of dynamic table.
  std::string table_64k("\x00\x01\x00\x01\x00\x00", 6);
  Encoder client;
  d.add(c.handshake());
  d.add(c.client(Wire() << kPreface << frame(kSettings, 0, 0, table_64k) << headers(1, client.block(get("/a")), true)
      << headers(3, client.block(get("/b")), true)));
  nghttp2_hd_deflater* big = nullptr;
  REQUIRE(nghttp2_hd_deflate_new(&big, 65536) == 0);
  REQUIRE(nghttp2_hd_deflate_change_table_size(big, 65536) == 0);
  auto block = [&](const Fields& fields) {
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : fields)
      nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                     reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(), 0});
    std::string out(nghttp2_hd_deflate_bound(big, nva.data(), nva.size()), '\0');
    auto n = nghttp2_hd_deflate_hd(big, reinterpret_cast<std::uint8_t*>(out.data()), out.size(), nva.data(),
                                   nva.size());
    REQUIRE(n >= 0);
    out.resize(static_cast<std::size_t>(n));
    return out;
  };
  // Fields larger than the default 4 KiB table, used again from the larger table.
  Fields large = ok("1");
  large.push_back({"x-big", std::string(6000, 'q')});
  d.add(c.server(settings() + settings_ack() + headers(1, block(large), false) + data(1, "a", true)));
  d.add(c.server(headers(3, block(large), false) + data(3, "b", true)));
  nghttp2_hd_deflate_del(big);
  d.finish();
  CHECK(d.stats().h2.hpack_errors == 0);
  CHECK(d.stats().responses == 2);
  REQUIRE(d.find(Kind::response, 3) != nullptr);
  CHECK(d.find(Kind::response, 3)->payload.find(std::string(6000, 'q')) != std::string::npos);
}

TEST_CASE("h2: HTTP/2 frame detection never takes HTTP/1.x text for frames") {
  CHECK(Http2FrameParser::looks_like_frames(settings() + frame(kWindow, 0, 0, std::string("\0\0\1\0", 4))));
  CHECK_FALSE(Http2FrameParser::looks_like_frames("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  CHECK_FALSE(Http2FrameParser::looks_like_frames("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  CHECK_FALSE(Http2FrameParser::looks_like_frames(settings().substr(0, 5)));
  CHECK_FALSE(Http2FrameParser::looks_like_frames(data(1, "abc", false).substr(0, 10)));  // cut: too unsure
}

TEST_CASE("h2 after HTTP/1: the HTTP/1.x path is unchanged for a connection that starts with a request") {
  Driver d;
  pb::Conversation c(kClient, 40017, kServer, 8080);
  d.add(c.handshake());
  d.add(c.client("PRI / HTTP/1.1\r\nHost: a\r\n\r\n"));  // a prefix of the preface, then not
  d.add(c.server("HTTP/1.1 204 No Content\r\n\r\n"));
  d.finish();
  CHECK(d.stats().h2.connections == 0);
  CHECK(d.stats().requests == 1);
  CHECK(d.stats().responses == 1);
}

TEST_CASE("h2: open streams show in tables.h2_streams until they end, and leave with their connection") {
  Driver d;
  pb::Conversation c(kClient, 40090, kServer, 8080);
  Encoder client, server;
  d.add(c.handshake());
  d.add(c.client(Wire() << kPreface << settings() << headers(1, client.block(get("/a")), true)
                        << headers(3, client.block(get("/b")), true) << headers(5, client.block(get("/c")), true)));
  CHECK(d.stats().tables.h2_streams == 3);
  CHECK(d.stats().tables.connections == 1);
  d.add(c.server(Wire() << settings() << headers(1, server.block(ok("1")), false) << data(1, "a", true)));
  CHECK(d.stats().tables.h2_streams == 2);  // stream 1 answered
  d.add({c.client_fin(), c.server_fin()});
  CHECK(d.stats().tables.h2_streams == 0);
  d.finish();  // the closed connection lingers a moment for late retransmissions
  CHECK(d.stats().tables.connections == 0);
  CHECK(d.dropped(DropReason::unfinished) == 0);
  CHECK(d.stats().h2.streams_abandoned == 2);  // 3 and 5, never answered
}
