// libFuzzer: HTTPS capture end to end. Real TLS conversations (OpenSSL client and server in
// process, tls_conversation.hpp) are recorded once at start-up: TLS 1.3 (AES-GCM, ChaCha20) and
// TLS 1.2 (GCM, CBC with and without encrypt-then-MAC) carrying HTTP/1.1 keep-alive exchanges,
// and a TLS 1.3 connection with ALPN h2 carrying two HTTP/2 streams. Each input replays one of
// them into a CaptureSession as TCP segments, choosing the MSS, segments to drop, duplicate or
// swap with the next, a ciphertext byte to XOR, whether the SYN was captured, when the key log
// arrives (before, after the data, never, wrong), a tight memory budget, and how it ends.
// Invariants, besides no crash:
//   - a message is exactly one message its side wrote (HTTP/2: the HTTP/1.1 form of its stream),
//     each at most once and in the order written: never a byte that was not sent;
//   - a response carries the id of the request it answers, emitted before it;
//   - meta.tls is set on every message with the conversation's version and cipher (and its SNI
//     and ALPN when no byte was altered);
//   - tls.decrypted <= tls.connections <= 1; with no key, a wrong key, or the client's Finished
//     altered, nothing is emitted; with the whole capture, the key and the default budget, every
//     message comes out, none dropped.
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../pcap_builder.hpp"
#include "../tls_conversation.hpp"
#include "capture_session.hpp"
#include "doppel/http2.hpp"
#include "http2_frame_parser.hpp"
#include "tls_key_source.hpp"

using namespace doppel;
using namespace doppel::plugins::raw;
namespace pb = pcap_builder;
namespace tc = tls_conversation;

namespace {

const pb::Address kClient = pb::Address::v4("10.4.0.1");
const pb::Address kServer = pb::Address::v4("10.4.0.2");
constexpr std::int64_t kT0 = 1'700'000'000'000'000'000;
constexpr std::int64_t kKeyWaitNs = 1'000'000'000;
const std::string kSni = "api.doppel.test";

// One message as its side wrote it (h2: the HTTP/1.1 form the capture gives its stream).
struct Sent {
  std::string payload;
  std::uint32_t stream = 0;
};

struct Recording {
  std::vector<tc::Chunk> wire;
  std::string keylog;
  std::string version, cipher, alpn;
  bool h2 = false;
  std::vector<Sent> requests, responses;  // h1: response i answers request i
  // The client's Finished record body in the client's wire bytes: the last protected bytes before
  // its first application data, so altering one leaves nothing of the connection decryptable.
  std::size_t finished_begin = 0, finished_end = 0;
};

std::string body(std::size_t size, char seed) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>(seed + i * 7 % 61);
  return out;
}

std::string get(const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: " + kSni + "\r\nUser-Agent: fuzz/1\r\n\r\n";
}
std::string ok(const std::string& status, const std::string& content) {
  return "HTTP/1.1 " + status + "\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
         std::to_string(content.size()) + "\r\n\r\n" + content;
}

// HTTP/2 by hand: frames, and header blocks of literals without indexing (HPACK 6.2.2), enough for
// the capture's inflater and short enough to fuzz around.
std::string frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream, std::string_view payload) {
  return pb::http2_frame(type, flags, stream, payload);
}
std::string literals(const std::vector<h2::Field>& fields) {
  std::string block;
  for (const auto& f : fields) {
    block.push_back(0);
    block.push_back(static_cast<char>(f.name.size()));
    block += f.name;
    block.push_back(static_cast<char>(f.value.size()));
    block += f.value;
  }
  return block;
}
constexpr std::uint8_t kData = 0, kHeaders = 1, kSettings = 4, kEndStream = 1, kEndHeaders = 4;

std::string http1_form(const h2::StreamMessage& m) {
  std::string error;
  auto form = h2::to_http1(m, error);
  if (!form) __builtin_trap();
  return *form;
}

// Where the client's Finished lies: TLS 1.3's first protected record, TLS 1.2's first handshake
// record after its ChangeCipherSpec.
void find_client_finished(Recording& r) {
  std::string client;
  for (const auto& chunk : r.wire)
    if (chunk.direction == 0) client += chunk.bytes;
  bool after_ccs = false;
  for (std::size_t at = 0; at + 5 <= client.size();) {
    auto type = static_cast<std::uint8_t>(client[at]);
    std::size_t length = (std::size_t{static_cast<std::uint8_t>(client[at + 3])} << 8) |
                         static_cast<std::uint8_t>(client[at + 4]);
    if ((r.version == "TLSv1.3" && type == 23) || (r.version == "TLSv1.2" && type == 22 && after_ccs)) {
      r.finished_begin = at + 5;
      r.finished_end = at + 5 + length;
      return;
    }
    after_ccs = after_ccs || type == 20;
    at += 5 + length;
  }
  __builtin_trap();
}

Recording record(int version, const std::string& suite, const std::string& shown, bool encrypt_then_mac, bool h2) {
  tc::Options options;
  options.version = version;
  (version == TLS1_3_VERSION ? options.ciphersuites : options.ciphers) = suite;
  options.encrypt_then_mac = encrypt_then_mac;
  options.sni = kSni;
  options.alpn = {h2 ? "h2" : "http/1.1"};
  tc::Endpoints endpoints(options);
  tc::Connection tls(endpoints);
  if (!tls.handshake()) __builtin_trap();
  Recording r;
  r.version = version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2";
  r.cipher = shown;
  r.alpn = options.alpn[0];
  r.h2 = h2;
  if (!h2) {
    const std::string upload = body(6'000, 'u');
    const std::string post = "POST /upload HTTP/1.1\r\nHost: " + kSni +
                             "\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                             std::to_string(upload.size()) + "\r\n\r\n" + upload;
    const std::pair<std::string, std::string> exchanges[] = {
        {get("/small"), ok("200 OK", "small body")},
        {get("/large"), ok("200 OK", body(24'000, 'L'))},
        {post, ok("201 Created", "stored")},
        {get("/last"), ok("200 OK", "")}};
    for (const auto& [request, response] : exchanges) {
      tls.write(0, request);
      tls.write(1, response);
      r.requests.push_back({request});
      r.responses.push_back({response});
    }
  } else {
    const std::vector<h2::Field> get_a = {
        {":method", "GET"}, {":scheme", "https"}, {":authority", kSni}, {":path", "/h2/a"}};
    const std::vector<h2::Field> post_b = {{":method", "POST"},      {":scheme", "https"},
                                           {":authority", kSni},     {":path", "/h2/upload"},
                                           {"content-length", "7"}};
    const std::string large = body(5'000, 'H');
    const std::vector<h2::Field> ok_a = {
        {":status", "200"}, {"content-type", "text/plain"}, {"content-length", std::to_string(large.size())}};
    const std::vector<h2::Field> created_b = {{":status", "201"}};
    tls.write(0, std::string(kHttp2Preface) + frame(kSettings, 0, 0, "") +
                     frame(kHeaders, kEndHeaders | kEndStream, 1, literals(get_a)));
    tls.write(1, frame(kSettings, 0, 0, "") + frame(kSettings, 1, 0, "") +
                     frame(kHeaders, kEndHeaders, 1, literals(ok_a)) + frame(kData, kEndStream, 1, large));
    tls.write(0, frame(kSettings, 1, 0, "") + frame(kHeaders, kEndHeaders, 3, literals(post_b)) +
                     frame(kData, kEndStream, 3, "payload"));
    tls.write(1, frame(kHeaders, kEndHeaders, 3, literals(created_b)) + frame(kData, kEndStream, 3, "ok"));
    r.requests = {{http1_form({get_a, "", {}}), 1}, {http1_form({post_b, "payload", {}}), 3}};
    r.responses = {{http1_form({ok_a, large, {}}), 1}, {http1_form({created_b, "ok", {}}), 3}};
  }
  r.wire = tls.wire();
  r.keylog = endpoints.take_keylog();
  find_client_finished(r);
  return r;
}

const std::vector<Recording>& recordings() {
  static const std::vector<Recording> all = {
      record(TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256", true, false),
      record(TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256", true, false),
      record(TLS1_2_VERSION, "ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", true, false),
      record(TLS1_2_VERSION, "ECDHE-RSA-AES128-SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", true, false),
      record(TLS1_2_VERSION, "ECDHE-RSA-AES128-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", false, false),
      record(TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256", true, true)};
  return all;
}

enum class Keys { before, after, never, all_wrong, one_wrong };
enum class Ending { fins, rst, finish };

// One hex digit of each selected secret changed: still a well-formed line, the wrong secret.
std::string corrupt(const std::string& keylog, std::size_t offset, std::optional<std::size_t> only_line) {
  std::string out;
  std::size_t line_number = 0, lines = static_cast<std::size_t>(std::count(keylog.begin(), keylog.end(), '\n'));
  for (std::size_t at = 0; at < keylog.size();) {
    std::size_t end = keylog.find('\n', at);
    if (end == std::string::npos) end = keylog.size();
    std::string line = keylog.substr(at, end - at);
    std::size_t secret = line.rfind(' ');
    if (secret != std::string::npos && secret + 1 < line.size() &&
        (!only_line || *only_line % std::max<std::size_t>(lines, 1) == line_number)) {
      char& digit = line[secret + 1 + offset % (line.size() - secret - 1)];
      digit = digit == '0' ? '1' : '0';
    }
    out += line + "\n";
    ++line_number;
    at = end + 1;
  }
  return out;
}

// Checks each message as it is emitted, against what the conversation's sides wrote.
class Checker {
 public:
  // `handshake_intact`: no byte altered, so SNI and ALPN are as sent. An altered ClientHello or
  // TLS 1.2 ServerHello shows in them and yet decrypts (nothing authenticates the handshake to a
  // reader with the logged secrets); version and cipher cannot change and still decrypt.
  Checker(const Recording& r, bool handshake_intact)
      : r_(r), handshake_intact_(handshake_intact), request_ids_(r.requests.size()) {}

  void on_message(const Message& m) {
    const TlsMeta* tls = m.meta.tls.get();
    if (!tls || tls->version != r_.version || tls->cipher != r_.cipher) __builtin_trap();
    if (handshake_intact_ && (tls->server_name != kSni || tls->alpn != r_.alpn)) __builtin_trap();
    if (m.meta.proto != (r_.h2 ? "h2" : "")) __builtin_trap();
    bool request = m.kind == Kind::request;
    if (!request && m.kind != Kind::response) __builtin_trap();
    const auto& sent = request ? r_.requests : r_.responses;
    std::size_t index = locate(m, sent, request ? next_request_ : next_response_);
    if (request) {
      if (!request_ids_[index].empty()) __builtin_trap();  // emitted twice
      for (const auto& id : request_ids_)
        if (id == m.id) __builtin_trap();  // one id for two requests
      request_ids_[index] = m.id;
      ++requests;
    } else {
      // The request this response answers, emitted before it, and its id.
      if (request_ids_[index].empty() || request_ids_[index] != m.id) __builtin_trap();
      ++responses;
    }
  }
  std::size_t requests = 0, responses = 0;

 private:
  // The index of the sent message `m` is. HTTP/1.1 messages come out in the order written, so
  // each is looked for after the last one found; HTTP/2 streams by their id.
  std::size_t locate(const Message& m, const std::vector<Sent>& sent, std::size_t& next) {
    if (r_.h2) {
      for (std::size_t i = 0; i < sent.size(); ++i)
        if (sent[i].stream == m.meta.stream_id) {
          if (sent[i].payload != m.payload) __builtin_trap();
          return i;
        }
      __builtin_trap();
    }
    for (std::size_t i = next; i < sent.size(); ++i)
      if (sent[i].payload == m.payload) {
        next = i + 1;
        return i;
      }
    __builtin_trap();  // not sent, sent before one already emitted, or emitted twice
  }

  const Recording& r_;
  bool handshake_intact_;
  std::vector<std::string> request_ids_;
  std::size_t next_request_ = 0, next_response_ = 0;
};

IpAddress address(const pb::Address& a) {
  IpAddress out;
  out.family = static_cast<std::uint8_t>(a.family);
  std::copy(std::begin(a.bytes), std::end(a.bytes), std::begin(out.bytes));
  return out;
}

std::uint16_t u16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  recordings();
  return 0;
}

// Input: 12 bytes of choices, then (segment u16, operation) triples of damage.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 12) return 0;
  const Recording& r = recordings()[data[0] % recordings().size()];
  const std::size_t mss = 1 + u16(data + 1) % 1500;
  const auto keys = static_cast<Keys>(data[3] % 5);
  const auto ending = static_cast<Ending>(data[4] % 3);
  const bool syn_seen = !(data[5] & 1);
  const bool tight_budget = data[5] & 2;
  const bool mutate = data[5] & 4;
  const std::size_t budget = (std::size_t{64} << 10) + std::size_t{data[6]} * 768;
  const int mutated_direction = data[7] & 1;
  const std::size_t mutated_offset = u16(data + 8);
  const auto mutation = static_cast<char>(data[10] ? data[10] : 1);
  const std::uint8_t wrong_key = data[11];

  // Each side's wire bytes, the chosen byte altered, then cut into segments in the wire's order.
  std::string stream[2];
  for (const auto& chunk : r.wire) stream[chunk.direction] += chunk.bytes;
  std::size_t mutated_at = mutated_offset % stream[mutated_direction].size();
  if (mutate) stream[mutated_direction][mutated_at] ^= mutation;
  pb::Conversation tcp(kClient, 40001, kServer, 443);
  std::vector<pb::Segment> handshake = tcp.handshake();
  std::vector<pb::Segment> segments;
  std::size_t read[2] = {0, 0};
  for (const auto& chunk : r.wire) {
    std::string_view bytes = std::string_view(stream[chunk.direction]).substr(read[chunk.direction], chunk.bytes.size());
    read[chunk.direction] += chunk.bytes.size();
    for (std::size_t at = 0; at < bytes.size(); at += mss)
      segments.push_back(chunk.direction == 0 ? tcp.client(bytes.substr(at, mss)) : tcp.server(bytes.substr(at, mss)));
  }
  bool dropped = false, swapped = false;
  for (std::size_t at = 12; at + 3 <= size && !segments.empty(); at += 3) {
    std::size_t i = u16(data + at) % segments.size();
    switch (data[at + 2] % 3) {
      case 0:
        segments.erase(segments.begin() + static_cast<std::ptrdiff_t>(i));
        dropped = true;
        break;
      case 1:
        segments.insert(segments.begin() + static_cast<std::ptrdiff_t>(i) + 1, segments[i]);
        break;
      default:
        if (i + 1 < segments.size()) {
          std::swap(segments[i], segments[i + 1]);
          swapped = true;
        }
    }
  }

  CaptureConfig config;
  config.track_response = true;
  config.server_ports = {443};
  auto key_source = std::make_shared<TlsKeySource>("");
  config.tls_keys = key_source;
  config.tls_limits.key_wait_ns = kKeyWaitNs;
  if (tight_budget) config.limits.memory_budget = budget;
  Checker checker(r, !mutate);
  CaptureStats stats;
  {
    CaptureSession session(config, [&](Message&& m) { checker.on_message(m); });
    std::int64_t t = kT0;
    // Segments as decoded (no IP packet built): with an MSS of a few bytes a conversation is tens
    // of thousands of them, and the packet decoder has fuzz targets of its own.
    auto add = [&](const pb::Segment& s) {
      TcpSegment segment;
      segment.source = address(s.src);
      segment.destination = address(s.dst);
      segment.source_port = s.sport;
      segment.destination_port = s.dport;
      segment.seq = s.seq;
      segment.ack = s.ack;
      segment.flags = s.flags;
      segment.payload = s.payload;
      session.add_segment(segment, t);
      t += 1000;  // 1 us: the whole conversation stays well inside the key wait and the gap timeout
    };
    if (keys == Keys::before) key_source->add_embedded(r.keylog);
    if (keys == Keys::all_wrong) key_source->add_embedded(corrupt(r.keylog, wrong_key, std::nullopt));
    if (keys == Keys::one_wrong) key_source->add_embedded(corrupt(r.keylog, wrong_key, wrong_key >> 4));
    if (syn_seen)
      for (const auto& s : handshake) add(s);
    for (const auto& s : segments) add(s);
    if (keys == Keys::after) {
      key_source->add_embedded(r.keylog);
      session.advance(t);
    }
    if (keys == Keys::never) session.advance(t += 2 * kKeyWaitNs);
    if (ending == Ending::fins) {
      add(tcp.client_fin());
      add(tcp.server_fin());
    } else if (ending == Ending::rst) {
      add(tcp.client_rst());
    }
    session.finish(t);
    stats = session.stats();
  }

  const auto& tls = stats.tls;
  if (tls.decrypted > tls.connections || tls.connections > 1) __builtin_trap();
  if (checker.responses > checker.requests) __builtin_trap();
  bool finished_altered = mutate && mutated_direction == 0 && mutated_at >= r.finished_begin &&
                          mutated_at < r.finished_end;
  bool undecryptable = keys == Keys::never || keys == Keys::all_wrong || finished_altered;
  if (undecryptable && checker.requests + checker.responses != 0) __builtin_trap();
  // The whole capture (repeats, and reordering once the SYN fixed where each side begins, are
  // no loss: within a side the reassembler orders, across sides the acknowledgement numbers put
  // the ciphertext back in order), its key and room enough: every exchange, nothing dropped.
  bool whole = !dropped && (!swapped || syn_seen) && !mutate && !tight_budget &&
               (keys == Keys::before || keys == Keys::after);
  if (whole) {
    if (checker.requests != r.requests.size() || checker.responses != r.responses.size()) __builtin_trap();
    if (tls.connections != 1 || tls.decrypted != 1 || stats.responses_missing != 0) __builtin_trap();
    for (auto n : stats.dropped)
      if (n != 0) __builtin_trap();
  }
  return 0;
}
