#include "http_stream_parser.hpp"

#include <array>
#include <cstring>
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


// A request line "METHOD SP target SP HTTP/1.x CRLF" anywhere in `s` (a body before it need
// not end with a newline). Anchored on " HTTP/1.", which is rare in bodies and cheap to find.
std::size_t find_request_line(std::string_view s) {
  std::size_t from = 0;
  for (std::size_t k; (k = s.find(" HTTP/1.", from)) != std::string_view::npos; from = k + 1) {
    if (k + 10 > s.size()) break;
    if (!is_digit(s[k + 8]) || (s[k + 9] != '\r' && s[k + 9] != '\n')) continue;
    if (k == 0) continue;
    std::size_t space = s.rfind(' ', k - 1);
    if (space == std::string_view::npos || space + 1 == k || space == 0) continue;
    std::string_view target = s.substr(space + 1, k - space - 1);
    if (target.find_first_of("\r\n\t") != std::string_view::npos) continue;
    for (auto method : kMethods)
      if (method.size() <= space && s.substr(space - method.size(), method.size()) == method)
        return space - method.size();
  }
  return std::string_view::npos;
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

// RFC 9110 tchar: what a header name or a method may be made of.
constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 'a' + 'A'] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

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

}  // namespace

std::size_t find_message_start(HttpStreamParser::Side side, std::string_view bytes) {
  return side == HttpStreamParser::Side::request ? find_request_line(bytes) : find_status_line(bytes);
}

HttpStreamParser::HttpStreamParser(Side side, HttpMessageListener& listener, bool in_sync, bool keep_bytes,
                                   std::size_t max_message_size, bool plain_framing)
    : side_(side),
      listener_(listener),
      keep_bytes_(keep_bytes),
      max_message_size_(max_message_size),
      plain_framing_(plain_framing),
      state_(in_sync ? State::parsing : State::seeking),
      skip_unreported_(!in_sync) {
  llhttp_settings_init(&settings_);
  settings_.on_headers_complete = &on_headers_complete_cb;
  settings_.on_message_complete = &on_message_complete_cb;
  restart_parser();
}

HttpStreamParser::~HttpStreamParser() = default;

void HttpStreamParser::restart_parser() {
  llhttp_init(&parser_, side_ == Side::request ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
  // We observe traffic the endpoints already accepted: be as lenient as they were, except
  // where framing would become ambiguous (chunked + Content-Length stays strict).
  llhttp_set_lenient_headers(&parser_, 1);
  llhttp_set_lenient_keep_alive(&parser_, 1);
  in_message_ = in_body_ = switching_ = false;
}

int HttpStreamParser::on_headers_complete_cb(llhttp_t* parser) {
  auto* self = static_cast<HttpStreamParser*>(parser->data);
  self->message_.status = parser->status_code;
  self->message_.method = parser->method;
  self->in_body_ = true;
  int answer = self->listener_.on_headers(*self, parser->status_code, parser->method);
  if (answer == 2) self->switching_ = true;
  return answer;
}

int HttpStreamParser::on_message_complete_cb(llhttp_t* parser) {
  auto* self = static_cast<HttpStreamParser*>(parser->data);
  if (self->finishing_) {
    self->completed_by_finish_ = true;
    return 0;
  }
  // A protocol switch pauses by itself right after this callback.
  if (parser->upgrade || self->switching_) return 0;
  return HPE_PAUSED;
}

void HttpStreamParser::feed(std::string_view bytes, std::int64_t ts) {
  switch (state_) {
    case State::parsing:
      parse(bytes.data(), bytes.size(), ts);
      break;
    case State::seeking:
      seek(bytes, ts);
      break;
    case State::upgraded:
      if (held_.size() + bytes.size() <= max_message_size_) {
        if (held_.empty()) held_ts_ = ts;
        held_.append(bytes);
      } else {
        held_lost_ = true;
      }
      break;
    case State::stopped:
      break;
  }
}

void HttpStreamParser::seek(std::string_view bytes, std::int64_t ts) {
  std::string joined;
  std::string_view data = bytes;
  if (!carry_.empty()) {
    joined = std::move(carry_);
    joined.append(bytes);
    data = joined;
  }
  carry_.clear();
  std::size_t start = find_message_start(side_, data);
  if (start != std::string_view::npos) {
    skipped_bytes_ += start;
    skipped_since_sync_ += start;
    if (skip_unreported_ && skipped_since_sync_ > 0) listener_.on_unreported_skip(*this, skipped_since_sync_);
    skipped_since_sync_ = 0;
    skip_unreported_ = false;
    restart_parser();
    state_ = State::parsing;
    parse(data.data() + start, data.size() - start, ts);
    return;
  }
  // The start of a message may straddle this packet and the next: keep the tail.
  std::size_t keep = data.size() < kMaxCarry ? data.size() : kMaxCarry;
  skipped_bytes_ += data.size() - keep;
  skipped_since_sync_ += data.size() - keep;
  carry_.assign(data.substr(data.size() - keep));
}

void HttpStreamParser::append(const char* begin, const char* end, std::int64_t ts) {
  if (begin == end) return;
  message_.last_byte_ns = ts;
  if (!keep_bytes_ || message_.too_large) return;
  auto n = static_cast<std::size_t>(end - begin);
  if (message_.bytes.size() + n > max_message_size_) {
    message_.too_large = true;
    std::string().swap(message_.bytes);  // bounded memory: the rest of it is only framed
    return;
  }
  message_.bytes.append(begin, n);
}

void HttpStreamParser::parse(const char* p, std::size_t size, std::int64_t ts) {
  const char* end = p + size;
  while (p < end && state_ == State::parsing) {
    if (!in_message_) {
      while (p < end && (*p == '\r' || *p == '\n')) ++p;  // tolerated between messages
      if (p == end) break;
      in_message_ = true;
      in_body_ = false;
      llhttp_in_message_ = false;
      message_ = ParsedMessage{};
      message_.first_byte_ns = message_.last_byte_ns = ts;
      listener_.on_message_begin(*this, ts);
    }
    if (!llhttp_in_message_ && plain_framing_) {
      if (std::size_t n = frame_plain_message(p, static_cast<std::size_t>(end - p))) {
        // The whole message is here (within max_message_size): the listener reads it in place.
        message_.last_byte_ns = ts;
        if (keep_bytes_) message_.in_place = std::string_view(p, n);
        complete(ts);
        p += n;
        continue;
      }
    }
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
      complete(ts);
      p = pos;
      continue;
    }
    if (err == HPE_PAUSED_UPGRADE) {
      append(p, pos, ts);
      if (in_message_) complete(ts);
      if (state_ != State::parsing) return;  // the listener already stopped this stream
      state_ = State::upgraded;
      held_.assign(pos, end);
      held_ts_ = ts;
      listener_.on_upgrade(*this);
      return;
    }
    // Not HTTP (any more): drop what was gathered and look for the next message start.
    ++parse_errors_;
    skip_unreported_ = !in_message_;
    skipped_since_sync_ = 0;
    abandon("parse_error", ts);
    state_ = State::seeking;
    const char* resume = pos > p ? pos : p + 1;
    seek(std::string_view(resume, static_cast<std::size_t>(end - resume)), ts);
    return;
  }
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
    i += 9;
  } else {
    std::string_view line(data, size < 12 ? size : 12);
    if (line.size() < 12 || (!line.starts_with("HTTP/1.1 ") && !line.starts_with("HTTP/1.0 "))) return 0;
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
          if (!iequal_lower(v, "keep-alive") && !iequal_lower(v, "close")) return 0;
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
  return head_end + static_cast<std::size_t>(body);
}

void HttpStreamParser::complete(std::int64_t ts) {
  in_message_ = in_body_ = switching_ = false;
  (void)ts;
  listener_.on_message(*this, std::move(message_));
  message_ = ParsedMessage{};
}

void HttpStreamParser::abandon(std::string_view reason, std::int64_t ts) {
  if (!in_message_) return;
  in_message_ = in_body_ = switching_ = false;
  message_.incomplete_reason = reason;
  if (message_.last_byte_ns == 0) message_.last_byte_ns = ts;
  listener_.on_message(*this, std::move(message_));
  message_ = ParsedMessage{};
}

void HttpStreamParser::hole(std::uint64_t length, std::string_view reason, std::int64_t ts) {
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
        complete(ts);
      } else if (err != HPE_OK) {
        abandon(reason, ts);
        break;
      }
    }
    if (length == 0 && state_ == State::parsing && !parse_failed()) return;
  }
  if (state_ == State::parsing) {
    skip_unreported_ = !in_message_;
    skipped_since_sync_ = 0;
  }
  abandon(reason, ts);
  if (state_ == State::parsing || state_ == State::seeking) {
    state_ = State::seeking;
    carry_.clear();
  }
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
    if (err == HPE_OK && completed_by_finish_) complete(ts);
    else abandon(reason_if_cut, ts);
  }
  state_ = State::stopped;
  carry_.clear();
  held_.clear();
}

void HttpStreamParser::stop() {
  abandon("upgraded", 0);
  state_ = State::stopped;
  held_.clear();
  carry_.clear();
}

void HttpStreamParser::resume_after_refused_upgrade(std::int64_t ts) {
  if (state_ != State::upgraded) return;
  std::string held = std::move(held_);
  held_.clear();
  if (held_lost_) {
    held_lost_ = false;
    state_ = State::seeking;
    return;
  }
  llhttp_resume_after_upgrade(&parser_);
  state_ = State::parsing;
  in_message_ = in_body_ = switching_ = false;
  if (!held.empty()) parse(held.data(), held.size(), held_ts_ ? held_ts_ : ts);
}

}  // namespace doppel::plugins::raw
