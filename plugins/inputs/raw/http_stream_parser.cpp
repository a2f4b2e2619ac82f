#include "http_stream_parser.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <span>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "doppel/http.hpp"

namespace doppel::plugins::raw {
namespace {

constexpr std::array<std::string_view, 33> kMethods = {
    "GET",    "POST",     "PUT",      "DELETE",    "HEAD",       "OPTIONS",  "PATCH", "CONNECT", "TRACE",
    "PURGE",  "PROPFIND", "PROPPATCH", "MKCOL",    "COPY",       "MOVE",     "LOCK",  "UNLOCK",  "SEARCH",
    "REPORT", "MERGE",    "NOTIFY",   "SUBSCRIBE", "UNSUBSCRIBE", "MKCALENDAR", "LINK", "UNLINK", "SOURCE",
    "BIND",   "REBIND",   "UNBIND",   "ACL",       "QUERY",      "M-SEARCH"};

bool is_digit(char c) { return c >= '0' && c <= '9'; }


// RFC 9110 tchar: what a header name or a method may be made of.
constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 'a' + 'A'] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool is_token(std::string_view s) {
  for (char c : s)
    if (!kTokenChars[static_cast<unsigned char>(c)]) return false;
  return !s.empty();
}

bool looks_like_method(std::string_view s) {
  if (s.empty() || s[0] < 'A' || s[0] > 'Z') return false;
  for (char c : s)
    if (!((c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '_')) return false;
  return true;
}

// A request line "METHOD SP target SP HTTP/1.x CRLF" in `s`, at a line start: after a line
// feed (any method token), or at one of `packets` (where a packet began, which may begin a
// message) with a common method only, as a packet may also begin inside a token. Never inside
// a token otherwise: BDELETE is not DELETE. Anchored on " HTTP/1.", rare in bodies.
std::size_t find_request_line(std::string_view s, std::span<const std::size_t> packets) {
  constexpr auto npos = std::string_view::npos;
  // "METHOD SP target" from `line` up to k, the method any token or a common one.
  auto request_line_at = [&](std::size_t line, std::size_t k, bool common_only) {
    std::size_t space = s.find(' ', line);
    if (space >= k || space == line || space + 1 == k) return false;
    std::string_view method = s.substr(line, space - line), target = s.substr(space + 1, k - space - 1);
    if (!is_token(method) || target.find_first_of(" \r\n\t") != npos) return false;
    // Found by seeking, a method must look like one (upper case, digits, '-', '_'): a body
    // line ending in "xyz" before a pipelined "PUT" would otherwise make "xyzPUT".
    if (!looks_like_method(method)) return false;
    if (!common_only) return true;
    for (auto m : kMethods)
      if (m == method) return true;
    return false;
  };
  std::size_t from = 0;
  for (std::size_t k; (k = s.find(" HTTP/1.", from)) != npos; from = k + 1) {
    if (k + 10 > s.size()) break;
    if (!is_digit(s[k + 8]) || (s[k + 9] != '\r' && s[k + 9] != '\n')) continue;
    std::size_t newline = k == 0 ? npos : s.rfind('\n', k - 1);
    std::size_t line = newline == npos ? 0 : newline + 1;
    if (newline != npos && request_line_at(line, k, false)) return line;
    for (std::size_t packet : packets)
      if (packet >= line && packet < k && request_line_at(packet, k, true)) return packet;
  }
  return npos;
}

// A status line "HTTP/1.x NNN" anywhere in `s`.
std::size_t find_status_line(std::string_view s) {
  std::size_t from = 0;
  for (std::size_t k; (k = s.find("HTTP/1.", from)) != std::string_view::npos; from = k + 1) {
    if (k + 12 > s.size()) break;
    if (is_digit(s[k + 7]) && s[k + 8] == ' ' && is_digit(s[k + 9]) && is_digit(s[k + 10]) && is_digit(s[k + 11]))
      return k;
  }
  return std::string_view::npos;
}

constexpr std::size_t kMaxCarry = 8192;  // a start line cut by a packet boundary

// What a string holds on the heap, as charged to the memory budget (libstdc++ keeps up to 15
// characters inside the string itself).
std::size_t heap_bytes(const std::string& s) { return s.capacity() > 15 ? s.capacity() + 1 : 0; }

// Field values and reason phrases: HTAB, visible ASCII, SP, obs-text. No CR, LF or other controls.
constexpr std::array<bool, 256> kFieldChars = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = c == '\t' || (c >= 0x20 && c != 0x7f);
  return t;
}();

// Request targets: anything visible, no SP, no controls (llhttp decides about the rest).
constexpr std::array<bool, 256> kTargetChars = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = c > 0x20 && c != 0x7f;
  return t;
}();

// From `i`, the first byte that is not a field-value character (kFieldValue) or a request
// target character: 16 bytes per step where SSE2 is there (every x86-64), the tables elsewhere.
template <bool kFieldValue>
[[gnu::always_inline]] inline std::size_t skip_allowed(const unsigned char* b, std::size_t i, std::size_t size) {
#if defined(__SSE2__)
  const __m128i highest_control = _mm_set1_epi8(kFieldValue ? 0x1f : 0x20);  // a target has no SP
  const __m128i del = _mm_set1_epi8(0x7f);
  const __m128i tab = _mm_set1_epi8(0x09);
  for (; i + 16 <= size; i += 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i));
    __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(v, highest_control), v);  // unsigned v <= highest
    if constexpr (kFieldValue) control = _mm_andnot_si128(_mm_cmpeq_epi8(v, tab), control);
    int refused = _mm_movemask_epi8(_mm_or_si128(control, _mm_cmpeq_epi8(v, del)));
    if (refused != 0) return i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(refused)));
  }
#endif
  const auto& allowed = kFieldValue ? kFieldChars : kTargetChars;
  while (i < size && allowed[b[i]]) ++i;
  return i;
}

// From `i`, the first byte that is not a token character (kTokenChars). Where SSE2 is there,
// 16 bytes per step while they are letters, digits and '-' (what header names are made of);
// the table judges the first other byte.
[[gnu::always_inline]] inline std::size_t skip_token(const unsigned char* b, std::size_t i, std::size_t size) {
#if defined(__SSE2__)
  const __m128i case_bit = _mm_set1_epi8(0x20), a = _mm_set1_epi8('a'), last_letter = _mm_set1_epi8(25);
  const __m128i zero = _mm_set1_epi8('0'), last_digit = _mm_set1_epi8(9), dash = _mm_set1_epi8('-');
  while (i + 16 <= size) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i));
    __m128i letter_offset = _mm_sub_epi8(_mm_or_si128(v, case_bit), a);  // 0..25 for a letter
    __m128i letter = _mm_cmpeq_epi8(_mm_min_epu8(letter_offset, last_letter), letter_offset);
    __m128i digit_offset = _mm_sub_epi8(v, zero);
    __m128i digit = _mm_cmpeq_epi8(_mm_min_epu8(digit_offset, last_digit), digit_offset);
    auto common = static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(letter, digit), _mm_cmpeq_epi8(v, dash))));
    if (common == 0xffff) {
      i += 16;
      continue;
    }
    i += static_cast<std::size_t>(__builtin_ctz(~common));
    if (!kTokenChars[b[i]]) return i;
    ++i;  // a rarer token character ('_', '.', ...)
  }
#endif
  while (i < size && kTokenChars[b[i]]) ++i;
  return i;
}

// Methods the plain path frames (others go to llhttp), with llhttp's numbers for them.
struct PlainMethod {
  std::string_view name;
  std::uint8_t number;
};
constexpr std::array<PlainMethod, 7> kPlainMethods = {{{"GET", HTTP_GET},
                                                        {"POST", HTTP_POST},
                                                        {"PUT", HTTP_PUT},
                                                        {"HEAD", HTTP_HEAD},
                                                        {"DELETE", HTTP_DELETE},
                                                        {"PATCH", HTTP_PATCH},
                                                        {"OPTIONS", HTTP_OPTIONS}}};

// `s` equals `lower` (lower-case letters and '-') but for ASCII case, eight bytes per step.
// Setting bit 0x20 folds only upper-case letters onto those bytes, and CR onto '-': exact for
// header names and values, which hold no CR.
bool iequal_lower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  constexpr std::uint64_t kCaseBits = 0x2020202020202020ull;
  auto word = [](const char* p) {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
  };
  std::size_t n = s.size(), i = 0;
  for (; i + 8 <= n; i += 8)
    if ((word(s.data() + i) | kCaseBits) != word(lower.data() + i)) return false;
  if (i == n) return true;
  if (n >= 8) return (word(s.data() + n - 8) | kCaseBits) == word(lower.data() + n - 8);  // the tail, overlapping
  for (; i < n; ++i)
    if ((s[i] | 0x20) != lower[i]) return false;
  return true;
}
const char kZeros[16384] = {};

// The methods llhttp frames itself, from its own header (a newer llhttp knows more).
#define DOPPEL_LLHTTP_METHOD(NUM, NAME, STRING) std::string_view(#STRING),
constexpr std::string_view kLlhttpMethods[] = {HTTP_METHOD_MAP(DOPPEL_LLHTTP_METHOD)};
#undef DOPPEL_LLHTTP_METHOD
// What llhttp is fed in place of a method it does not know: a method of the same shape (any
// target, body by Content-Length or chunked) and no meaning of its own for the response.
constexpr std::string_view kStandInMethod = "POST";
constexpr std::size_t kMaxHead = std::size_t{128} << 10;  // servers refuse far smaller heads

// What the head of a request (request line and header fields) says about its framing.
struct RequestHead {
  enum Verdict {
    need_more,  // consistent so far, not whole yet
    junk,       // not a request line: bytes to skip
    ambiguous,  // framing a server may read otherwise (RFC 9112 6.1, 6.3): a smuggling attempt
    unframable,  // a request line, but not HTTP/1.x (HTTP/2 prior knowledge), or a head over kMaxHead
    framable,   // llhttp frames it (with a stand-in method when it does not know the token)
  } verdict = need_more;
  std::size_t size = 0;         // framable: the head's length; junk: where it stopped being a request line
  std::size_t method_size = 0;
  bool known_method = true;     // llhttp knows the method
};

bool is_framing_field(std::string_view name) {
  return iequal_lower(name, "content-length") || iequal_lower(name, "transfer-encoding");
}

// `s` starts at a message start. Judges the request line as soon as it is whole (or cannot
// become one), the framing once the head is whole.
RequestHead judge_request_head(std::string_view s) {
  RequestHead head;
  auto stop = [&](RequestHead::Verdict v, std::size_t at) {
    head.verdict = v;
    head.size = at;
    return head;
  };
  std::size_t i = 0;
  while (i < s.size() && kTokenChars[static_cast<unsigned char>(s[i])]) ++i;
  if (i == s.size()) return i > kMaxHead ? stop(RequestHead::junk, i) : head;
  if (i == 0 || s[i] != ' ') return stop(RequestHead::junk, i);
  head.method_size = i;
  std::string_view method = s.substr(0, i);
  head.known_method = false;
  for (auto m : kLlhttpMethods) head.known_method = head.known_method || m == method;
  std::size_t target = ++i;
  while (i < s.size() && static_cast<unsigned char>(s[i]) > 0x20 && s[i] != 0x7f) ++i;
  if (i == s.size()) return i > kMaxHead ? stop(RequestHead::junk, i) : head;
  if (i == target || s[i] != ' ') return stop(RequestHead::junk, i);
  // " HTTP/d.d" then CRLF or LF, checked as far as it has come.
  constexpr std::string_view kVersion = "HTTP/0.0\r\n";
  for (std::size_t k = 0; k < kVersion.size(); ++k) {
    std::size_t at = i + 1 + k;
    if (at >= s.size()) return head;
    char c = s[at];
    bool ok = kVersion[k] == '0' ? is_digit(c) : c == kVersion[k] || (k == 8 && c == '\n');
    if (!ok) return stop(RequestHead::junk, at);
    if (k == 8 && c == '\n') break;
  }
  if (s[i + 6] != '1') return stop(RequestHead::unframable, i);  // "PRI * HTTP/2.0": not ours
  bool http10 = s.substr(i + 1, 8) == "HTTP/1.0";
  i = s.find('\n', i) + 1;
  // Header fields up to the empty line.
  std::size_t lengths = 0, encodings = 0;
  std::string codings;  // every Transfer-Encoding value, joined
  bool ambiguous = false, last_framing = false;
  for (;;) {
    std::size_t lf = s.find('\n', i);
    if (lf == std::string_view::npos) return s.size() > kMaxHead ? stop(RequestHead::unframable, s.size()) : head;
    if (lf > kMaxHead) return stop(RequestHead::unframable, lf);
    std::string_view line = s.substr(i, lf - i);
    i = lf + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    if (line[0] == ' ' || line[0] == '\t') {
      // obs-fold, or whitespace before the first field: a framing field read two ways
      std::string_view folded = trim_ows(line);
      if (last_framing || is_framing_field(trim_ows(folded.substr(0, folded.find(':'))))) ambiguous = true;
      continue;
    }
    std::size_t colon = line.find(':');
    std::string_view name = line.substr(0, colon), trimmed = name;
    while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\t')) trimmed.remove_suffix(1);
    last_framing = is_framing_field(trimmed);
    if (!last_framing) continue;
    if (trimmed.size() != name.size() || colon == std::string_view::npos) ambiguous = true;  // "Transfer-Encoding :"
    if (colon == std::string_view::npos) continue;
    std::string_view value = trim_ows(line.substr(colon + 1));
    if (trimmed.size() == 14) {  // Content-Length: one, of digits only ("0, 49" and "+5" are not)
      if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos) ambiguous = true;
      if (++lengths > 1) ambiguous = true;  // differing, or even equal: nginx and llhttp refuse both
    } else {
      ++encodings;
      codings.append(",").append(value);
    }
  }
  if (encodings > 0) {
    // Both framings, HTTP/1.0, or a final coding other than chunked (applied once).
    if (lengths > 0 || http10) ambiguous = true;
    std::size_t chunked = 0;
    std::string_view last;
    for (std::string_view rest = codings; !rest.empty();) {
      std::size_t comma = rest.find(',');
      std::string_view coding = trim_ows(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (coding.empty()) continue;
      last = coding;
      if (iequal_lower(coding, "chunked")) ++chunked;
    }
    if (chunked != 1 || !iequal_lower(last, "chunked")) ambiguous = true;
  }
  return stop(ambiguous ? RequestHead::ambiguous : RequestHead::framable, i);
}

}  // namespace

std::size_t find_message_start(HttpStreamParser::Side side, std::string_view bytes, bool starts_at_boundary) {
  std::size_t start = 0;
  return side == HttpStreamParser::Side::request
             ? find_request_line(bytes, std::span<const std::size_t>(&start, starts_at_boundary ? 1 : 0))
             : find_status_line(bytes);
}

HttpStreamParser::HttpStreamParser(Side side, HttpMessageListener& listener, bool in_sync, bool keep_bytes,
                                   std::size_t max_message_size, bool plain_framing, MemoryAccount* memory)
    : side_(side),
      listener_(listener),
      keep_bytes_(keep_bytes),
      max_message_size_(max_message_size),
      plain_framing_(plain_framing),
      state_(in_sync ? State::parsing : State::seeking),
      skip_unreported_(!in_sync),
      seek_from_boundary_(!in_sync),
      memory_(memory) {
  llhttp_settings_init(&settings_);
  settings_.on_headers_complete = &on_headers_complete_cb;
  settings_.on_message_complete = &on_message_complete_cb;
  restart_parser();
}

HttpStreamParser::~HttpStreamParser() {
  if (charged_ != 0) memory_->release(charged_);
}

// Room in `buffer` for `size` bytes, charged to the memory budget before it is taken; false when
// the budget refuses it. Grown here rather than by std::string: doubling up to 1 MiB, then by
// half, so that a large message holds less room beyond its bytes. While the bytes are copied
// both rooms exist: the new one is charged in full, the old one given back after.
bool HttpStreamParser::room_for(std::string& buffer, std::size_t size) {
  std::size_t capacity = buffer.capacity();
  if (size <= capacity || memory_ == nullptr) return true;
  std::size_t grown = capacity < (std::size_t{1} << 20) ? 2 * capacity : capacity + capacity / 2;
  std::size_t want = std::max(size, grown);
  if (!memory_->reserve(want + 1)) return false;
  charged_ += want + 1;
  std::size_t old = heap_bytes(buffer);
  {
    std::string larger;
    larger.reserve(want);
    larger.append(buffer);
    buffer.swap(larger);
  }
  if (old != 0) {
    charged_ -= old;
    memory_->release(old);
  }
  return true;
}

// Gives back the charge of what the buffers no longer hold (a message handed on, a head or a
// tail moved out).
void HttpStreamParser::settle() {
  std::size_t held = heap_bytes(message_.bytes) + heap_bytes(head_) + heap_bytes(carry_) + heap_bytes(held_);
  if (held < charged_) {
    memory_->release(charged_ - held);
    charged_ = held;
  }
}

// The message in progress goes on without its bytes (framed, not kept), told once.
void HttpStreamParser::give_up_message() {
  std::string().swap(message_.bytes);
  if (message_.over_budget) return;
  message_.over_budget = true;
  listener_.on_budget_exceeded(*this);
}

void HttpStreamParser::shed() {
  if (in_message_ && !message_.too_large && (!message_.bytes.empty() || !head_.empty())) give_up_message();
  std::string().swap(message_.bytes);
  if (in_message_ && !head_.empty()) head_lost_ = true;
  std::string().swap(head_);
  std::string().swap(carry_);
  carry_packets_.clear();
  if (!held_.empty()) held_lost_ = true;
  std::string().swap(held_);
  if (charged_ != 0) settle();
}

// A request head cannot be framed in part: the request whose head the budget took is dropped,
// and the next message is sought, as after a hole.
void HttpStreamParser::lose_head(std::int64_t ts) {
  give_up_message();
  std::string().swap(head_);
  message_.end_offset = position_;
  abandon("budget_exceeded", ts);
  state_ = State::seeking;
  skip_unreported_ = false;
  skipped_since_sync_ = 0;
  seek_from_boundary_ = false;
  carry_.clear();
  carry_packets_.clear();
}

void HttpStreamParser::restart_parser() {
  llhttp_init(&parser_, side_ == Side::request ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
  // We observe traffic the endpoints already accepted: be as lenient as they were, except
  // where framing would become ambiguous (chunked + Content-Length stays strict).
  llhttp_set_lenient_headers(&parser_, 1);
  llhttp_set_lenient_keep_alive(&parser_, 1);
  in_message_ = in_body_ = switching_ = extension_method_ = false;
  head_.clear();
}

int HttpStreamParser::on_headers_complete_cb(llhttp_t* parser) {
  auto* self = static_cast<HttpStreamParser*>(parser->data);
  self->message_.status = parser->status_code;
  self->message_.method = self->extension_method_ ? kExtensionMethod : parser->method;
  self->in_body_ = true;
  int answer = self->listener_.on_headers(*self, parser->status_code, self->message_.method);
  if (answer == 2) self->switching_ = true;
  return answer;
}

int HttpStreamParser::on_message_complete_cb(llhttp_t* parser) {
  auto* self = static_cast<HttpStreamParser*>(parser->data);
  self->message_.closes = llhttp_should_keep_alive(parser) == 0;
  if (self->finishing_) {
    self->completed_by_finish_ = true;
    return 0;
  }
  // A protocol switch pauses by itself right after this callback.
  if (parser->upgrade || self->switching_) return 0;
  return HPE_PAUSED;
}

void HttpStreamParser::feed(std::string_view bytes, std::int64_t ts, std::uint64_t offset) {
  if (offset != position_) carry_.clear();  // not contiguous with the tail kept while seeking
  if (head_lost_ && state_ == State::parsing) lose_head(ts);
  position_ = offset + bytes.size();
  switch (state_) {
    case State::parsing:
      parse(bytes.data(), bytes.size(), ts, offset);
      break;
    case State::seeking:
      seek(bytes, ts, offset, true);
      break;
    case State::upgraded:
      if (!held_lost_ && held_.size() + bytes.size() <= max_message_size_ &&
          room_for(held_, held_.size() + bytes.size())) {
        if (held_.empty()) {
          held_ts_ = ts;
          held_offset_ = offset;
        }
        held_.append(bytes);
      } else {
        held_lost_ = true;
        std::string().swap(held_);
      }
      break;
    case State::stopped:
      break;
  }
  if (charged_ != 0) settle();
}

void HttpStreamParser::seek(std::string_view bytes, std::int64_t ts, std::uint64_t offset, bool packet_start) {
  std::string joined;
  std::string_view data = bytes;
  std::uint64_t data_offset = offset;
  // Where packets began (a request line may start there, with a common method).
  std::vector<std::size_t> packets = std::move(carry_packets_);
  carry_packets_.clear();
  if (!carry_.empty()) {
    data_offset -= carry_.size();
    joined = std::move(carry_);
    joined.append(bytes);
    data = joined;
  } else {
    packets.clear();
    if (seek_from_boundary_) packets.push_back(0);
  }
  if (packet_start) packets.push_back(data.size() - bytes.size());
  seek_from_boundary_ = false;
  carry_.clear();
  std::size_t start = side_ == Side::request ? find_request_line(data, packets) : find_status_line(data);
  if (start != std::string_view::npos) {
    skipped_bytes_ += start;
    skipped_since_sync_ += start;
    if (skip_unreported_ && skipped_since_sync_ > 0) listener_.on_unreported_skip(*this, skipped_since_sync_);
    skipped_since_sync_ = 0;
    skip_unreported_ = false;
    restart_parser();
    state_ = State::parsing;
    next_resynchronised_ = true;
    parse(data.data() + start, data.size() - start, ts, data_offset + start);
    return;
  }
  // The start of a message may straddle this packet and the next: keep the tail, and the packet
  // starts in it after its last line feed (those before it can no longer lead a request line).
  std::size_t keep = data.size() < kMaxCarry ? data.size() : kMaxCarry;
  if (!room_for(carry_, keep)) keep = 0;  // the memory budget refuses it: a start cut in two is missed
  std::size_t cut = data.size() - keep, newline = data.rfind('\n');
  skipped_bytes_ += cut;
  skipped_since_sync_ += cut;
  carry_.assign(data.substr(cut));
  for (std::size_t packet : packets)
    if (packet >= cut && (newline == std::string_view::npos || packet > newline)) carry_packets_.push_back(packet - cut);
  if (carry_packets_.size() > 8) carry_packets_.erase(carry_packets_.begin(), carry_packets_.end() - 8);
}

void HttpStreamParser::append(const char* begin, const char* end, std::int64_t ts) {
  if (begin == end) return;
  message_.last_byte_ns = ts;
  if (!keep_bytes_ || message_.too_large || message_.over_budget) return;
  auto n = static_cast<std::size_t>(end - begin);
  if (message_.bytes.size() + n > max_message_size_) {
    message_.too_large = true;
    std::string().swap(message_.bytes);  // bounded memory: the rest of it is only framed
    return;
  }
  if (!room_for(message_.bytes, message_.bytes.size() + n)) {
    give_up_message();  // the memory budget refuses it: framed on, not kept
    return;
  }
  message_.bytes.append(begin, n);
}

void HttpStreamParser::parse(const char* p, std::size_t size, std::int64_t ts, std::uint64_t offset) {
  base_ = p;
  base_offset_ = offset;
  const char* end = p + size;
  while (p < end && state_ == State::parsing) {
    if (!in_message_) {
      while (p < end && (*p == '\r' || *p == '\n')) ++p;  // tolerated between messages
      if (p == end) break;
      in_message_ = true;
      in_body_ = false;
      llhttp_in_message_ = extension_method_ = false;
      head_.clear();
      message_ = ParsedMessage{};
      message_.first_byte_ns = message_.last_byte_ns = ts;
      message_.begin_offset = offset_at(p);
      message_.resynchronised = next_resynchronised_;
      next_resynchronised_ = false;
      listener_.on_message_begin(*this, ts);
    }
    if (!llhttp_in_message_ && plain_framing_ && head_.empty()) {
      if (std::size_t n = frame_plain_message(p, static_cast<std::size_t>(end - p))) {
        // The whole message is here (within max_message_size): the listener reads it in place.
        message_.last_byte_ns = ts;
        message_.end_offset = offset_at(p + n);
        if (keep_bytes_) message_.in_place = std::string_view(p, n);
        complete(ts);
        p += n;
        continue;
      }
    }
    if (!llhttp_in_message_ && side_ == Side::request && !gate_request_head(p, end, ts)) return;
    llhttp_in_message_ = true;
    llhttp_errno_t err = llhttp_execute(&parser_, p, static_cast<std::size_t>(end - p));
    if (err == HPE_OK) {
      append(p, end, ts);
      return;
    }
    const char* pos = llhttp_get_error_pos(&parser_);
    if (pos == nullptr || pos < p || pos > end) pos = err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE ? end : p;
    if (err == HPE_PAUSED) {
      append(p, pos, ts);
      llhttp_resume(&parser_);
      message_.end_offset = offset_at(pos);
      complete(ts);
      p = pos;
      continue;
    }
    if (err == HPE_PAUSED_UPGRADE) {
      append(p, pos, ts);
      message_.end_offset = offset_at(pos);
      std::uint64_t held_offset = offset_at(pos);
      if (in_message_) complete(ts);
      if (handing_over_) {
        handing_over_ = false;
        listener_.on_handed_over(*this, std::string_view(pos, static_cast<std::size_t>(end - pos)), held_offset, ts,
                                 false);
        return;
      }
      if (state_ != State::parsing) return;  // the listener already stopped this stream
      state_ = State::upgraded;
      if (room_for(held_, static_cast<std::size_t>(end - pos))) held_.assign(pos, end);
      else held_lost_ = true;
      held_ts_ = ts;
      held_offset_ = held_offset;
      listener_.on_upgrade(*this);
      return;
    }
    // Not HTTP (any more). Requests: llhttp saw a request line the gate passed.
    const char* resume = pos > p ? pos : p + 1;
    fail(offset_at(pos), std::string_view(resume, static_cast<std::size_t>(end - resume)), offset_at(resume), ts,
         side_ == Side::request);
    return;
  }
}

// Drops the message in progress as a parse error. After the request line of a request whose start
// was known (not found by seeking), the stream stops: that request is the client's own, the server
// refused it too (400 and close, mostly), and its body may hide a request that no server ever
// read (request smuggling). Otherwise it was junk, or the resynchronisation was wrong: look for
// the next message start in `rest`.
void HttpStreamParser::fail(std::uint64_t at, std::string_view rest, std::uint64_t rest_offset, std::int64_t ts,
                            bool after_request_line) {
  ++parse_errors_;
  skip_unreported_ = !in_message_;
  skipped_since_sync_ = 0;
  bool known_start = in_message_ && !message_.resynchronised;
  if (in_message_) message_.end_offset = at;
  abandon("parse_error", ts);
  std::string().swap(head_);
  if (after_request_line && known_start) {
    state_ = State::stopped;
    carry_.clear();
    return;
  }
  state_ = State::seeking;
  seek_from_boundary_ = false;
  seek(rest, ts, rest_offset, false);
}

// Requests: llhttp sees a request only once its head is whole and judged (judge_request_head),
// with a stand-in for a method it does not know; the wire bytes stay as they were. Returns false
// when this buffer is done with (kept until the head is whole, skipped as junk, or refused).
bool HttpStreamParser::gate_request_head(const char*& p, const char* end, std::int64_t ts) {
  std::string_view here(p, static_cast<std::size_t>(end - p));
  std::string joined;  // the head's bytes from earlier packets, then this one's
  std::string_view view = here;
  if (!head_.empty()) {
    joined = head_;
    joined.append(here);
    view = joined;
  }
  RequestHead head = judge_request_head(view);
  std::uint64_t begin = message_.begin_offset;
  switch (head.verdict) {
    case RequestHead::need_more:
      if (!room_for(head_, head_.size() + here.size())) {
        lose_head(ts);  // the memory budget refuses it; the rest of this buffer belongs to it
        return false;
      }
      head_.append(here);
      append(p, end, ts);
      if (head_lost_) lose_head(ts);  // keeping its bytes evicted its own head
      return false;
    case RequestHead::junk: {
      // Not a request line: look for one after where it stopped being one (earlier packets too).
      std::size_t resume = head.size > 0 ? head.size : 1;
      fail(begin + head.size, view.substr(resume), begin + resume, ts, false);
      return false;
    }
    case RequestHead::unframable:
      fail(begin + head.size, here, offset_at(p), ts, true);
      return false;
    case RequestHead::ambiguous:
      // Framing a server may read otherwise (RFC 9112 6.3): what follows on this connection is
      // never mined for requests, whatever it looks like.
      head_.clear();
      message_.end_offset = begin + head.size;
      abandon("ambiguous_framing", ts);
      state_ = State::stopped;
      carry_.clear();
      return false;
    case RequestHead::framable:
      break;
  }
  llhttp_in_message_ = true;
  extension_method_ = !head.known_method;
  std::string gathered = std::move(head_);
  head_.clear();
  std::size_t skip = extension_method_ ? head.method_size : 0;  // wire bytes llhttp is not fed
  llhttp_errno_t err = HPE_OK;
  if (extension_method_) err = llhttp_execute(&parser_, kStandInMethod.data(), kStandInMethod.size());
  if (err == HPE_OK && skip < gathered.size())
    err = llhttp_execute(&parser_, gathered.data() + skip, gathered.size() - skip);
  if (err != HPE_OK) {
    fail(begin, here, offset_at(p), ts, true);
    return false;
  }
  std::size_t in_here = skip > gathered.size() ? skip - gathered.size() : 0;
  append(p, p + in_here, ts);
  p += in_here;
  return true;
}

// The common case without llhttp (it was a fifth of the capture's CPU): a whole message in
// `data` whose framing is plain, i.e. a request or a final non-101 response with a known
// method or status, well-formed header lines, and a body given by Content-Length or absent
// (requests, HEAD answers, 204, 304). Everything else returns 0 and llhttp frames it: chunked,
// close-delimited, interim and 101 responses, Upgrade, Transfer-Encoding, repeated
// Content-Length, folded or odd header lines, messages cut by a packet boundary. The plain path
// accepts nothing llhttp would reject (a differential fuzz target checks both agree).
std::size_t HttpStreamParser::frame_plain_message(const char* data, std::size_t size) {
  // One pass over the head, each byte looked up once; any surprise hands the message to llhttp.
  const auto* b = reinterpret_cast<const unsigned char*>(data);
  std::size_t i = 0;
  auto crlf = [&] {
    if (i + 1 >= size || b[i] != '\r' || b[i + 1] != '\n') return false;
    i += 2;
    return true;
  };
  int status = 0;
  std::uint8_t method = 0;
  bool http11 = false;
  if (side_ == Side::request) {
    i = skip_token(b, 0, size);
    std::string_view name(data, i);
    const PlainMethod* known = nullptr;
    for (const auto& m : kPlainMethods)
      if (m.name == name) known = &m;
    if (known == nullptr || i + 1 >= size || b[i] != ' ' || b[i + 1] != '/') return 0;  // origin form only
    method = known->number;
    ++i;
    i = skip_allowed<false>(b, i, size);
    std::string_view version = std::string_view(data, size).substr(i, 9);
    if (version != " HTTP/1.1" && version != " HTTP/1.0") return 0;
    http11 = version[8] == '1';
    i += 9;
  } else {
    std::string_view line(data, size < 12 ? size : 12);
    if (line.size() < 12 || (!line.starts_with("HTTP/1.1 ") && !line.starts_with("HTTP/1.0 "))) return 0;
    http11 = line[7] == '1';
    char d0 = line[9], d1 = line[10], d2 = line[11];
    if (d0 < '2' || d0 > '5' || !is_digit(d1) || !is_digit(d2)) return 0;  // 1xx: llhttp
    status = (d0 - '0') * 100 + (d1 - '0') * 10 + (d2 - '0');
    i = 12;
    if (i < size && b[i] == ' ') {
      ++i;
      i = skip_allowed<true>(b, i, size);
    }
  }
  if (!crlf()) return 0;
  // Header lines up to the empty line.
  std::uint64_t content_length = 0;
  bool has_length = false;
  bool close = false, keep_alive = false;  // Connection tokens, as llhttp_should_keep_alive reads them
  for (;;) {
    if (i < size && b[i] == '\r') {
      if (!crlf()) return 0;
      break;
    }
    std::size_t name_start = i;
    i = skip_token(b, i, size);
    if (i == name_start || i >= size || b[i] != ':') return 0;
    std::string_view field(data + name_start, i - name_start);
    std::size_t value_start = ++i;
    i = skip_allowed<true>(b, i, size);
    std::string_view value(data + value_start, i - value_start);
    if (!crlf()) return 0;
    switch (field.size()) {
      case 7:  // Upgrade
        if (iequal_lower(field, "upgrade")) return 0;
        break;
      case 10:  // Connection: an "upgrade" token is llhttp's to judge
        if (iequal_lower(field, "connection")) {
          std::string_view v = trim_ows(value);
          if (iequal_lower(v, "close")) close = true;
          else if (iequal_lower(v, "keep-alive")) keep_alive = true;
          else return 0;
        }
        break;
      case 14:  // Content-Length
        if (iequal_lower(field, "content-length")) {
          std::string_view v = trim_ows(value);
          if (has_length || v.empty() || v.size() > 15) return 0;
          for (char c : v) {
            if (!is_digit(c)) return 0;
            content_length = content_length * 10 + static_cast<std::uint64_t>(c - '0');
          }
          has_length = true;
        }
        break;
      case 17:  // Transfer-Encoding
        if (iequal_lower(field, "transfer-encoding")) return 0;
        break;
      default:
        break;
    }
  }
  const std::size_t head_end = i;
  std::uint64_t body = 0;
  if (side_ == Side::request) {
    body = has_length ? content_length : 0;
  } else {
    int answer = listener_.on_headers(*this, status, 0);
    if (answer == 2) return 0;  // the protocol switches: llhttp's to handle
    if (answer == 1) body = 0;
    else if (has_length) body = (status == 204 || status == 304) ? ~std::uint64_t{0} : content_length;
    else if (status == 204 || status == 304) body = 0;
    else return 0;  // close-delimited
    if (body == ~std::uint64_t{0}) return 0;  // 204/304 with a length: as llhttp reads it
  }
  if (side_ == Side::request) listener_.on_headers(*this, 0, method);
  if (body > size - head_end || head_end + body > max_message_size_) return 0;
  message_.status = status;
  message_.method = method;
  message_.closes = http11 ? close : !keep_alive;
  return head_end + static_cast<std::size_t>(body);
}

void HttpStreamParser::complete(std::int64_t ts) {
  in_message_ = in_body_ = switching_ = false;
  (void)ts;
  listener_.on_message(*this, std::move(message_));
  message_ = ParsedMessage{};
  if (charged_ != 0) settle();
}

void HttpStreamParser::abandon(std::string_view reason, std::int64_t ts) {
  head_lost_ = false;
  if (!in_message_) return;
  in_message_ = in_body_ = switching_ = false;
  message_.incomplete_reason = reason;
  if (message_.last_byte_ns == 0) message_.last_byte_ns = ts;
  listener_.on_message(*this, std::move(message_));
  message_ = ParsedMessage{};
  if (charged_ != 0) settle();
}

void HttpStreamParser::hole(std::uint64_t length, std::string_view reason, std::int64_t ts) {
  std::uint64_t at = position_;  // where the hole begins
  position_ += length;
  if (state_ == State::stopped) return;
  if (state_ == State::upgraded) {
    held_lost_ = true;
    return;
  }
  if (state_ == State::parsing && in_message_ && in_body_ && !(parser_.flags & F_CHUNKED) &&
      ((parser_.flags & F_CONTENT_LENGTH) ? parser_.content_length >= length : llhttp_message_needs_eof(&parser_))) {
    // The hole is inside a body of known framing: step over it and keep the stream in sync.
    message_.incomplete_reason = reason;
    while (length > 0 && state_ == State::parsing) {
      std::size_t n = length < sizeof kZeros ? static_cast<std::size_t>(length) : sizeof kZeros;
      llhttp_errno_t err = llhttp_execute(&parser_, kZeros, n);
      length -= n;
      if (err == HPE_PAUSED) {
        llhttp_resume(&parser_);
        const char* pos = llhttp_get_error_pos(&parser_);
        message_.end_offset = at + (pos != nullptr && pos >= kZeros && pos <= kZeros + n ? pos - kZeros : n);
        complete(ts);
      } else if (err != HPE_OK) {
        message_.end_offset = at;
        abandon(reason, ts);
        break;
      }
      at += n;
    }
    if (length == 0 && state_ == State::parsing && !parse_failed()) return;
  }
  if (state_ == State::parsing) {
    skip_unreported_ = !in_message_;
    skipped_since_sync_ = 0;
  }
  if (in_message_) message_.end_offset = at;
  abandon(reason, ts);
  if (state_ == State::parsing || state_ == State::seeking) {
    state_ = State::seeking;
    carry_.clear();
    std::string().swap(head_);
    seek_from_boundary_ = true;  // the next byte may begin a message (a packet after the hole)
  }
  if (charged_ != 0) settle();
}

bool HttpStreamParser::parse_failed() const {
  llhttp_errno_t err = llhttp_get_errno(&parser_);
  return err != HPE_OK && err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE;
}

void HttpStreamParser::end(std::int64_t ts, std::string_view reason_if_cut) {
  if (state_ == State::parsing && in_message_) {
    finishing_ = true;
    completed_by_finish_ = false;
    llhttp_errno_t err = llhttp_finish(&parser_);
    finishing_ = false;
    message_.end_offset = position_;
    if (err == HPE_OK && completed_by_finish_) complete(ts);
    else abandon(reason_if_cut, ts);
  }
  state_ = State::stopped;
  std::string().swap(carry_);
  std::string().swap(held_);
  if (charged_ != 0) settle();
}

void HttpStreamParser::stop(std::string_view reason) {
  message_.end_offset = position_;
  abandon(reason, 0);
  state_ = State::stopped;
  std::string().swap(head_);
  std::string().swap(held_);
  std::string().swap(carry_);
  if (charged_ != 0) settle();
}

void HttpStreamParser::resume_after_refused_upgrade(std::int64_t ts) {
  if (state_ != State::upgraded) return;
  std::string held = std::move(held_);
  held_.clear();
  if (held_lost_) {
    held_lost_ = false;
    state_ = State::seeking;
    held = std::string();
    if (charged_ != 0) settle();
    return;
  }
  llhttp_resume_after_upgrade(&parser_);
  state_ = State::parsing;
  in_message_ = in_body_ = switching_ = false;
  if (!held.empty()) parse(held.data(), held.size(), held_ts_ ? held_ts_ : ts, held_offset_);
  held = std::string();
  if (charged_ != 0) settle();
}

void HttpStreamParser::hand_over() {
  if (state_ == State::upgraded) {
    std::string held = std::move(held_);
    held_.clear();
    bool lost = held_lost_;
    held_lost_ = false;
    state_ = State::stopped;
    if (charged_ != 0) settle();
    listener_.on_handed_over(*this, held, held_offset_, held_ts_, lost);
    return;
  }
  // Inside on_message of the switching response: parse() hands the rest of its packet over.
  if (state_ == State::parsing) handing_over_ = true;
  message_.end_offset = position_;
  abandon("upgraded", 0);
  state_ = State::stopped;
  std::string().swap(head_);
  std::string().swap(carry_);
  if (charged_ != 0) settle();
}

}  // namespace doppel::plugins::raw
