// HTTP/1.x framing at its edges (issues 14.3, 14.4, 15.1): methods llhttp does not know are
// framed as sent, never rewritten; seeking finds request lines only at line starts; requests
// whose framing a server may read two ways (request smuggling) are not emitted and the rest of
// their connection is not mined for requests.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "doppel/testing.hpp"
#include "http_stream_parser.hpp"
#include "pcap_builder.hpp"

using namespace doppel;
using namespace doppel::plugins::raw;
using namespace pcap_builder;

namespace {

// ---- the parser alone ----

struct Framed : HttpMessageListener {
  std::vector<std::string> messages;  // wire bytes of each complete message
  std::vector<std::string> abandoned;  // why each abandoned one was
  std::vector<std::uint8_t> methods;
  std::vector<bool> closes;
  void on_message_begin(HttpStreamParser&, std::int64_t) override {}
  int on_headers(HttpStreamParser&, int, std::uint8_t) override { return 0; }
  void on_message(HttpStreamParser&, ParsedMessage&& m) override {
    if (!m.incomplete_reason.empty()) {
      abandoned.emplace_back(m.incomplete_reason);
      return;
    }
    messages.emplace_back(m.wire());
    methods.push_back(m.method);
    closes.push_back(m.closes);
  }
  void on_unreported_skip(HttpStreamParser&, std::uint64_t) override {}
  void on_upgrade(HttpStreamParser&) override {}
};

struct Run {
  Framed framed;
  HttpStreamParser::State state{};
};

// `stream` fed in pieces of `piece` bytes (every split of a head must give the same), with the
// plain path on and off (they must agree).
Run frame(const std::string& stream, bool in_sync = true, std::size_t piece = 0, bool plain = true) {
  Run r;
  HttpStreamParser parser(HttpStreamParser::Side::request, r.framed, in_sync, true, 1 << 20, plain);
  if (piece == 0) piece = stream.size() + 1;
  for (std::size_t i = 0; i < stream.size(); i += piece) parser.feed(std::string_view(stream).substr(i, piece), 1);
  r.state = parser.state();
  parser.end(2, "unfinished");
  return r;
}

// The same messages whatever the packet size and whichever path frames them.
std::vector<std::string> framed_every_way(const std::string& stream, bool in_sync = true) {
  Run whole = frame(stream, in_sync);
  for (std::size_t piece : {1, 2, 3, 7, 16, 64})
    for (bool plain : {true, false}) {
      Run other = frame(stream, in_sync, piece, plain);
      CHECK_MESSAGE(other.framed.messages == whole.framed.messages, "piece " << piece << " plain " << plain);
      CHECK(other.framed.abandoned == whole.framed.abandoned);
      CHECK(other.framed.methods == whole.framed.methods);
    }
  return whole.framed.messages;
}

const std::string kAfter = "GET /next HTTP/1.1\r\nHost: s\r\n\r\n";

// A smuggling probe: `head` fields, then a body that hides a request for /admin.
std::string probe(const std::string& fields, int n) {
  std::string hidden = "GET /admin?probe=" + std::to_string(n) + " HTTP/1.1\r\nHost: s\r\n\r\n";
  return "POST /p HTTP/1.1\r\nHost: s\r\n" + fields + "\r\n0\r\n\r\n" + hidden;
}

struct Probe {
  const char* name;
  std::string fields;
};
const std::vector<Probe> kProbes = {
    {"TE and CL", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"},
    {"CL and TE", "Transfer-Encoding: chunked\r\nContent-Length: 44\r\n"},
    {"duplicate CL", "Content-Length: 5\r\nContent-Length: 49\r\n"},
    {"equal duplicate CL", "Content-Length: 5\r\nContent-Length: 5\r\n"},
    {"CL list", "Content-Length: 0, 49\r\n"},
    {"CL with a sign", "Content-Length: +5\r\n"},
    {"TE with a space before the colon", "Transfer-Encoding : chunked\r\n"},
    {"CL with a tab before the colon", "Content-Length\t: 5\r\n"},
    {"xchunked", "Transfer-Encoding: xchunked\r\n"},
    {"chunked, identity", "Transfer-Encoding: chunked, identity\r\n"},
    {"chunked twice over two fields", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"},
    {"final coding over two fields", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"},
    {"obs-fold in TE", "Transfer-Encoding:\r\n chunked\r\n"},
    {"obs-fold after TE", "Transfer-Encoding: gzip\r\n , chunked\r\n"},
    {"TE in HTTP/1.0", ""},  // built below
};

// ---- the raw input end to end ----

const Address kClient = Address::v4("192.168.7.10");
const Address kServer = Address::v4("192.168.7.20");
constexpr std::int64_t kT0 = 1'700'000'000'000'000'000;
constexpr std::int64_t kMs = 1'000'000;

struct Result {
  std::vector<MessagePtr> messages;
  std::map<std::string, std::uint64_t> drops;
  std::vector<std::string> of(Kind kind) const {
    std::vector<std::string> out;
    for (auto& m : messages)
      if (m->kind == kind) out.push_back(m->payload);
    return out;
  }
  std::uint64_t drop(const std::string& reason) const {
    auto it = drops.find(reason);
    return it == drops.end() ? 0 : it->second;
  }
};

Result run_capture(const Capture& capture) {
  static std::atomic<int> n{0};
  std::string path = (std::filesystem::temp_directory_path() /
                      ("doppel-framing-" + std::to_string(getpid()) + "-" + std::to_string(n++) + ".pcap"))
                         .string();
  capture.write_pcap(path);
  Value::Table options{{"file", path}, {"track_response", true}, {"port", 80}, {"threads", 1}};
  testing::StageHarness h(testing::linked_plugin("raw"), Value(std::move(options)));
  h.run();
  std::filesystem::remove(path);
  return {h.emitted(), h.drops()};
}

void add_all(Capture& c, const std::vector<Segment>& segments, std::int64_t& t) {
  for (auto& s : segments) {
    c.add(s, t);
    t += kMs;
  }
}

const std::string kBadRequest =
    "HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad request";
const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

}  // namespace

TEST_CASE("methods llhttp does not know are framed exactly as sent, never rewritten (14.3)") {
  const std::string bdelete = "BDELETE /exchange/x HTTP/1.1\r\nHost: s\r\n\r\n";
  const std::string ccm = "CCM_POST /ccm HTTP/1.1\r\nHost: s\r\nContent-Length: 5\r\n\r\nhello";
  const std::string chunked = "X-MS-ENUMATTS /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  const std::string lower = "get /lower HTTP/1.1\r\n\r\n";
  auto messages = framed_every_way(bdelete + ccm + chunked + lower + kAfter);
  CHECK(messages == std::vector<std::string>{bdelete, ccm, chunked, lower, kAfter});
  Run r = frame(bdelete + ccm + kAfter);
  CHECK(r.framed.methods == std::vector<std::uint8_t>{kExtensionMethod, kExtensionMethod, HTTP_GET});
}

TEST_CASE("QUERY, unknown to this llhttp, is framed with its body (14.4)") {
  const std::string query = "QUERY /search HTTP/1.1\r\nHost: s\r\nContent-Type: application/json\r\n"
                            "Content-Length: 13\r\n\r\n{\"q\":\"robot\"}";
  const std::string chunked = "QUERY /s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nq=ab\r\n0\r\n\r\n";
  CHECK(framed_every_way(query + chunked + kAfter) == std::vector<std::string>{query, chunked, kAfter});
}

TEST_CASE("an extension method has no semantics of its own: not HEAD, not CONNECT") {
  // llhttp is fed a stand-in; what the listener hears is kExtensionMethod, never the stand-in.
  Run r = frame("HEADX / HTTP/1.1\r\n\r\nCONNECTX /x HTTP/1.1\r\n\r\n" + kAfter);
  REQUIRE(r.framed.methods.size() == 3);
  CHECK(r.framed.methods[0] == kExtensionMethod);
  CHECK(r.framed.methods[1] == kExtensionMethod);
}

TEST_CASE("seeking finds request lines only at a line start, never inside a token") {
  // Mid-stream: the first line is passed over; BDELETE is found whole, not as DELETE.
  auto messages = framed_every_way("tail of a body\r\nBDELETE /x HTTP/1.1\r\n\r\nCCM_POST / HTTP/1.1\r\n\r\n", false);
  CHECK(messages == std::vector<std::string>{"BDELETE /x HTTP/1.1\r\n\r\n", "CCM_POST / HTTP/1.1\r\n\r\n"});
  // Inside a token of one packet: nothing (split into tiny packets, a packet start may fall
  // right before GET, and a packet start may begin a message).
  CHECK(frame("xxGET /a HTTP/1.1\r\n\r\n", false).framed.messages.empty());
  // Not in sync, the first packet may begin a message, but only with a common method (a packet
  // after a hole may begin inside a token: "ETE /x" is the end of "DELETE /x").
  CHECK(frame("GET /a HTTP/1.1\r\n\r\n", false).framed.messages.size() == 1);
  CHECK(frame("ETE /x HTTP/1.1\r\n\r\n" + kAfter, false).framed.messages == std::vector<std::string>{kAfter});
  // find_message_start, used to tell client from server.
  // A packet start may be inside a token: only a common method is taken there.
  CHECK(find_message_start(HttpStreamParser::Side::request, "GET /x HTTP/1.1\r\n") == 0);
  CHECK(find_message_start(HttpStreamParser::Side::request, "BDELETE /x HTTP/1.1\r\n") == std::string::npos);
  CHECK(find_message_start(HttpStreamParser::Side::request, "x\nBDELETE /x HTTP/1.1\r\n") == 2);
  CHECK(find_message_start(HttpStreamParser::Side::request, "xBDELETE /x HTTP/1.1\r\n") == std::string::npos);
  CHECK(find_message_start(HttpStreamParser::Side::request, "GET /x HTTP/1.1\r\n", false) == std::string::npos);
}

TEST_CASE("junk at the start of a connection is skipped, the next request at a line start is framed") {
  const std::string junk("\x16\x03\x01\x02\x00 not http\r\n", 16);
  auto messages = framed_every_way(junk + "BDELETE /x HTTP/1.1\r\n\r\n" + kAfter);
  CHECK(messages == std::vector<std::string>{"BDELETE /x HTTP/1.1\r\n\r\n", kAfter});
  // Junk with no line feed, then a request in the next packet: a packet start may begin one.
  Framed framed;
  HttpStreamParser parser(HttpStreamParser::Side::request, framed, true, true, 1 << 20);
  parser.feed(std::string_view("\x16\x03\x01\x02", 4), 1);
  parser.feed(kAfter, 2);
  CHECK(framed.messages == std::vector<std::string>{kAfter});
  // ... but only with a common method, and never inside a token of the same packet.
  Framed other;
  HttpStreamParser p2(HttpStreamParser::Side::request, other, true, true, 1 << 20);
  p2.feed(std::string_view("\x16\x03B", 3), 1);
  p2.feed("DELETE /x HTTP/1.1\r\n\r\n", 2);
  p2.feed("\x16xDELETE /y HTTP/1.1\r\n\r\n", 3);
  CHECK(other.messages == std::vector<std::string>{"DELETE /x HTTP/1.1\r\n\r\n"});
}

TEST_CASE("each smuggling probe: not emitted, and the body is not mined for the hidden request (15.1)") {
  for (std::size_t i = 0; i < kProbes.size(); ++i) {
    std::string stream = kProbes[i].fields.empty()
                             ? "POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin?probe=" +
                                   std::to_string(i) + " HTTP/1.1\r\n\r\n"
                             : probe(kProbes[i].fields, static_cast<int>(i));
    CAPTURE(kProbes[i].name);
    for (std::size_t piece : {0, 1, 5, 40})
      for (bool plain : {true, false}) {
        Run r = frame(stream + kAfter, true, piece, plain);
        CHECK(r.framed.messages.empty());
        CHECK(r.framed.abandoned == std::vector<std::string>{"ambiguous_framing"});
        CHECK(r.state == HttpStreamParser::State::stopped);
      }
    // Found by seeking (mid-stream) too.
    Run midstream = frame("xx\r\n" + stream + kAfter, false);
    CHECK(midstream.framed.messages.empty());
    CHECK(midstream.framed.abandoned == std::vector<std::string>{"ambiguous_framing"});
  }
}

TEST_CASE("framing that is plain is not taken for smuggling") {
  const std::string gzip_chunked = "POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
  const std::string two_fields = "POST /b HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n";
  const std::string length = "POST /c HTTP/1.1\r\ncontent-length:  3 \r\n\r\nabc";
  const std::string folded_other = "GET /d HTTP/1.1\r\nX-Long: a\r\n b\r\n\r\n";
  CHECK(framed_every_way(gzip_chunked + two_fields + length + folded_other + kAfter) ==
        std::vector<std::string>{gzip_chunked, two_fields, length, folded_other, kAfter});
}

TEST_CASE("a request that fails to parse after its request line ends its connection's request stream") {
  // Its start was known (in sync): the server refused it too, and what follows is not mined.
  const std::string bad_chunk = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
  Run r = frame(bad_chunk + "GET /admin HTTP/1.1\r\n\r\n");
  CHECK(r.framed.messages.empty());
  CHECK(r.framed.abandoned == std::vector<std::string>{"parse_error"});
  CHECK(r.state == HttpStreamParser::State::stopped);
  // Found by seeking, the failure may be the resynchronisation's: seeking goes on.
  Run seeking = frame("x\r\n" + bad_chunk + "\r\n" + kAfter, false);
  CHECK(seeking.framed.messages == std::vector<std::string>{kAfter});
}

TEST_CASE("a message says whether its sender closes after it") {
  for (bool plain : {true, false}) {
    Run r = frame("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\nGET /c HTTP/1.0\r\n\r\n"
                  "GET /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                  true, 0, plain);
    CHECK(r.framed.closes == std::vector<bool>{false, true, true, false});
  }
}

TEST_CASE("raw input: smuggling probes answered 400 + close give no request, counted as ambiguous_framing") {
  Capture c;
  std::int64_t t = kT0;
  for (std::size_t i = 0; i < kProbes.size(); ++i) {
    if (kProbes[i].fields.empty()) continue;
    CAPTURE(kProbes[i].name);
    Conversation conv(kClient, static_cast<std::uint16_t>(41000 + i), kServer, 80);
    add_all(c, conv.handshake(), t);
    add_all(c, {conv.client(probe(kProbes[i].fields, static_cast<int>(i))), conv.server(kBadRequest),
                conv.server_fin(), conv.client_fin()},
            t);
  }
  // A clean connection afterwards is captured as usual, with an extension method and QUERY.
  Conversation clean(kClient, 42000, kServer, 80);
  add_all(c, clean.handshake(), t);
  const std::string query = "QUERY /q HTTP/1.1\r\nHost: s\r\nContent-Length: 2\r\n\r\n{}";
  const std::string bdelete = "BDELETE /x HTTP/1.1\r\nHost: s\r\n\r\n";
  add_all(c, {clean.client(query), clean.server(kOk), clean.client(bdelete), clean.server(kOk), clean.client_fin(),
              clean.server_fin()},
          t);
  Result r = run_capture(c);
  CHECK(r.of(Kind::request) == std::vector<std::string>{query, bdelete});
  CHECK(r.of(Kind::response) == std::vector<std::string>{kOk, kOk});
  std::size_t probes = kProbes.size() - 1;
  CHECK(r.drop("ambiguous_framing") == 2 * probes);  // each probe and the 400 that answered it
  for (auto& m : r.messages) CHECK(m->payload.find("/admin") == std::string::npos);
}

TEST_CASE("raw input: after a response that closes, what the client sent later is not mined") {
  // doppel frames the first request (Content-Length 0), the server refused it and closed;
  // bytes the client sent after that answer are not requests the server read.
  Capture c;
  std::int64_t t = kT0;
  Conversation conv(kClient, 43000, kServer, 80);
  add_all(c, conv.handshake(), t);
  const std::string first = "POST /p HTTP/1.1\r\nHost: s\r\nContent-Length: 0\r\n\r\n";
  add_all(c, {conv.client(first), conv.server(kBadRequest), conv.client("GET /admin?late=1 HTTP/1.1\r\n\r\n"),
              conv.server_fin(), conv.client_fin()},
          t);
  Result r = run_capture(c);
  CHECK(r.of(Kind::request) == std::vector<std::string>{first});
  CHECK(r.of(Kind::response) == std::vector<std::string>{kBadRequest});
}

TEST_CASE("raw input: an API's 400 on a keep-alive connection does not end the request stream") {
  Capture c;
  std::int64_t t = kT0;
  Conversation conv(kClient, 43001, kServer, 80);
  add_all(c, conv.handshake(), t);
  const std::string a = "POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
  const std::string invalid = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
  add_all(c, {conv.client(a), conv.server(invalid), conv.client(kAfter), conv.server(kOk)}, t);
  Result r = run_capture(c);
  CHECK(r.of(Kind::request) == std::vector<std::string>{a, kAfter});
  CHECK(r.of(Kind::response) == std::vector<std::string>{invalid, kOk});
}

TEST_CASE("HTTP/2 prior knowledge is not framed as a request with an extension method") {
  Run r = frame(std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00", 29) + "GET /x HTTP/1.1\r\n\r\n");
  CHECK(r.framed.messages.empty());
  CHECK(r.state == HttpStreamParser::State::stopped);
}
