// libFuzzer: the SDK's HTTP view and body decoding, which every plugin reads messages with.
// Byte 0 chooses the mode; the rest is either
//  - a message (even byte 0): parsed as a captured payload; every view must lie inside it, the
//    lazily parsed views of a Message must agree with a direct parse, and the payload edits
//    (set/remove a header, set the target) must do what they say on what parses;
//  - a body (odd byte 0): encoded the ways a sender may (chunked with sizes from byte 0,
//    gzip, zlib or raw deflate), then framed as a response: decode_body must give it back.
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "doppel/form.hpp"
#include "doppel/http.hpp"
#include "doppel/message.hpp"

using namespace doppel;

namespace {

constexpr std::size_t kMaxBody = 4096;  // small, so that inputs reach the limit too

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void fail(const char* what, std::string_view payload) {
  std::fprintf(stderr, "%s\n--- payload (%zu bytes) ---\n%.*s\n", what, payload.size(),
               static_cast<int>(payload.size()), payload.data());
  __builtin_trap();
}

void check_view(const HttpView& v, std::string_view payload) {
  if (v.head_size() > payload.size()) fail("head_size beyond the payload", payload);
  for (auto part : {v.method(), v.target(), v.path(), v.query(), v.version(), v.reason(), v.raw_body()})
    if (!inside(part, payload)) fail("a view outside the payload", payload);
  for (const auto& h : v.headers())
    if (!inside(h.name, payload) || !inside(h.value, payload)) fail("a header outside the payload", payload);
  if (v.ok() && v.raw_body() != payload.substr(v.head_size())) fail("raw_body is not what follows the head", payload);
}

void check_forms(const HttpView& v, std::string_view body) {
  for (auto text : {v.query(), body}) {
    for (const auto& [key, value] : parse_form(text))
      if (key.size() + value.size() > text.size()) fail("a form field larger than its text", text);
    if (percent_decode(text).size() > text.size()) fail("percent_decode grew the text", text);
  }
  if (auto type = v.header("Content-Type")) (void)is_form_content_type(*type);
  (void)looks_like_form(body);
}

void check_edits(const HttpView& v, std::string_view payload) {
  // Edits keep every other byte; checked where the original parses cleanly.
  std::string set = http_set_header(payload, "X-Doppel-Fuzz", "set");
  HttpView after_set = HttpView::parse(set);
  if (!after_set.ok() || after_set.header("X-Doppel-Fuzz") != std::optional<std::string_view>("set") ||
      after_set.raw_body() != v.raw_body())
    fail("http_set_header did not set the header", payload);
  if (!v.headers().empty()) {
    std::string name(v.headers().front().name);
    std::string removed = http_remove_header(payload, name);
    HttpView after_remove = HttpView::parse(removed);
    if (after_remove.ok() && after_remove.header(name)) fail("http_remove_header left the header", payload);
  }
  if (v.is_request()) {
    std::string moved = http_set_target(payload, "/doppel?fuzz=1");
    HttpView after_move = HttpView::parse(moved);
    if (!after_move.ok() || after_move.target() != "/doppel?fuzz=1" || after_move.method() != v.method())
      fail("http_set_target did not set the target", payload);
  }
}

void message_mode(std::string_view payload) {
  HttpView v = HttpView::parse(payload);
  check_view(v, payload);
  DecodedBody body = decode_body(v, kMaxBody);
  if (body.bytes.size() > kMaxBody) fail("decoded body over the limit", payload);
  check_forms(v, body.bytes);
  if (v.ok()) check_edits(v, payload);

  // A message parses lazily, once, to the same views.
  Message m(v.is_response() ? Kind::response : Kind::request, "0123456789abcdef01234567", 1, std::string(payload));
  const HttpView& lazy = m.http();
  if (lazy.ok() != v.ok() || lazy.head_size() != v.head_size() || lazy.headers().size() != v.headers().size() ||
      &lazy != &m.http())
    fail("Message::http() differs from HttpView::parse", payload);
  const DecodedBody& lazy_body = m.body();
  if (lazy.ok() && (lazy_body.bytes != decode_body(lazy).bytes || &lazy_body != &m.body()))
    fail("Message::body() differs from decode_body", payload);
}

std::string compress(std::string_view bytes, int window_bits) {
  z_stream z{};
  // memLevel 1: the smallest state, since zlib zeroes it for every input.
  if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, window_bits, 1, Z_DEFAULT_STRATEGY) != Z_OK) __builtin_trap();
  std::string out(deflateBound(&z, bytes.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) __builtin_trap();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

void body_mode(std::uint8_t how, std::string_view body) {
  static const char* const kCodings[] = {nullptr, "gzip", "deflate", "deflate"};
  static const int kWindowBits[] = {0, 15 + 16, 15, -15};  // gzip, zlib, raw deflate
  int coding = how >> 1 & 3;
  bool chunked = how & 8;
  bool lf_only = how & 16;
  std::size_t chunk = 1 + (how >> 5) * 7;
  std::string encoded = coding == 0 ? std::string(body) : compress(body, kWindowBits[coding]);
  const char* eol = lf_only ? "\n" : "\r\n";
  std::string message = std::string("HTTP/1.1 200 OK") + eol;
  if (coding != 0) message += std::string("Content-Encoding: ") + kCodings[coding] + eol;
  if (chunked) {
    message += std::string("Transfer-Encoding: chunked") + eol + eol;
    for (std::size_t i = 0; i < encoded.size(); i += chunk) {
      char size[32];
      std::snprintf(size, sizeof size, "%zx", std::min(chunk, encoded.size() - i));
      message += size + std::string(eol) + encoded.substr(i, chunk) + eol;
    }
    message += std::string("0") + eol + eol;
  } else {
    message += "Content-Length: " + std::to_string(encoded.size()) + eol + eol + encoded;
  }
  HttpView v = HttpView::parse(message);
  if (!v.ok()) fail("a well-formed response does not parse", message);
  DecodedBody decoded = decode_body(v, kMaxBody);
  if (decoded.bytes.size() > kMaxBody) fail("decoded body over the limit", message);
  if (body.size() <= kMaxBody && encoded.size() <= kMaxBody) {
    if (!decoded.error.empty() || decoded.bytes != body) fail("decode_body did not undo the encoding", message);
  } else if (body.size() > kMaxBody && decoded.error.empty()) {
    fail("a body over the limit was decoded without an error", message);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) body_mode(data[0], rest);
  else message_mode(rest);
  return 0;
}
