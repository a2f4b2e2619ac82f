#include "doppel/http.hpp"

#include "zlib_inflate.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace doppel {
namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }


// Offset just past the blank line ending the head, or npos.
std::size_t find_head_end(std::string_view bytes) {
  for (std::size_t i = bytes.find('\n'); i != std::string_view::npos; i = bytes.find('\n', i + 1)) {
    if (i + 1 < bytes.size() && bytes[i + 1] == '\n') return i + 2;
    if (i + 2 < bytes.size() && bytes[i + 1] == '\r' && bytes[i + 2] == '\n') return i + 3;
  }
  return std::string_view::npos;
}

bool contains_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    auto comma = list.find(',');
    if (iequals(trim_ows(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// The header fields of a chunked body's trailer section (the bytes after the last chunk's
// size line), up to the blank line that ends it.
std::vector<HttpHeader> parse_trailers(std::string_view in, std::string& error) {
  std::vector<HttpHeader> trailers;
  while (true) {
    auto eol = in.find('\n');
    if (eol == std::string_view::npos) {
      if (error.empty()) error = "truncated trailer section";
      return trailers;
    }
    std::string_view line = in.substr(0, eol);
    in.remove_prefix(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return trailers;
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0 || line.front() == ' ' || line.front() == '\t') {
      if (error.empty()) error = "malformed trailer field";
      return trailers;
    }
    trailers.push_back({trim_ows(line.substr(0, colon)), trim_ows(line.substr(colon + 1))});
  }
}

// Removes chunked framing; stops with an error at the first malformed or missing chunk. The
// trailer fields go to `trailers` when given.
std::string dechunk(std::string_view in, std::string& error, std::size_t max_size,
                    std::vector<HttpHeader>* trailers = nullptr) {
  std::string out;
  while (true) {
    auto eol = in.find('\n');
    if (eol == std::string_view::npos) {
      error = "truncated chunked body";
      return out;
    }
    std::string_view size_line = trim_ows(in.substr(0, eol));
    size_line = size_line.substr(0, size_line.find(';'));  // chunk extensions
    std::uint64_t size = 0;
    auto [ptr, ec] = std::from_chars(size_line.data(), size_line.data() + size_line.size(), size, 16);
    if (ec != std::errc{} || ptr != size_line.data() + size_line.size() || size_line.empty()) {
      error = "malformed chunk size";
      return out;
    }
    in.remove_prefix(eol + 1);
    if (size == 0) {  // trailers follow; they are header fields, not body
      if (trailers != nullptr) *trailers = parse_trailers(in, error);
      return out;
    }
    if (size > in.size()) {
      out.append(in.substr(0, std::min<std::size_t>(in.size(), max_size - std::min(max_size, out.size()))));
      error = "truncated chunked body";
      return out;
    }
    if (out.size() + size > max_size) {
      error = "decoded body larger than the limit";
      return out;
    }
    out.append(in.substr(0, size));
    in.remove_prefix(size);
    if (in.starts_with("\r\n")) in.remove_prefix(2);
    else if (in.starts_with("\n")) in.remove_prefix(1);
  }
}

}  // namespace

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

HttpView HttpView::parse(std::string_view bytes) {
  HttpView v;
  std::size_t head_end = find_head_end(bytes);
  std::string_view head = bytes.substr(0, head_end == std::string_view::npos ? bytes.size() : head_end);
  v.head_size_ = head.size();
  v.raw_body_ = head_end == std::string_view::npos ? std::string_view{} : bytes.substr(head_end);

  auto eol = head.find('\n');
  std::string_view start = trim_ows(head.substr(0, eol));
  if (start.empty()) {
    v.error_ = "empty start line";
    return v;
  }
  if (start.starts_with("HTTP/")) {
    auto sp = start.find(' ');
    v.version_ = start.substr(0, sp);
    std::string_view rest = sp == std::string_view::npos ? std::string_view{} : start.substr(sp + 1);
    auto code = rest.substr(0, rest.find(' '));
    int status = 0;
    auto [ptr, ec] = std::from_chars(code.data(), code.data() + code.size(), status);
    if (ec != std::errc{} || ptr != code.data() + code.size() || code.size() != 3) {
      v.error_ = "malformed status line";
      return v;
    }
    v.status_ = status;
    v.reason_ = code.size() < rest.size() ? rest.substr(code.size() + 1) : std::string_view{};
  } else {
    auto sp1 = start.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : start.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) {
      v.error_ = "malformed request line";
      return v;
    }
    v.method_ = start.substr(0, sp1);
    v.target_ = start.substr(sp1 + 1, sp2 - sp1 - 1);
    v.version_ = start.substr(sp2 + 1);
    if (!v.version_.starts_with("HTTP/") || v.method_.empty() || v.target_.empty()) {
      v.error_ = "malformed request line";
      return v;
    }
    v.is_request_ = true;
  }
  std::string_view rest = eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 1);
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t') continue;  // obsolete line folding
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      v.error_ = "malformed header line";
      return v;
    }
    v.headers_.push_back({trim_ows(line.substr(0, colon)), trim_ows(line.substr(colon + 1))});
  }
  if (head_end == std::string_view::npos) v.error_ = "headers not terminated";
  return v;
}

std::string_view HttpView::path() const { return target_.substr(0, target_.find('?')); }

std::string_view HttpView::query() const {
  auto q = target_.find('?');
  return q == std::string_view::npos ? std::string_view{} : target_.substr(q + 1);
}

std::optional<std::string_view> HttpView::header(std::string_view name) const {
  for (const auto& h : headers_)
    if (iequals(h.name, name)) return h.value;
  return std::nullopt;
}

bool HttpView::chunked() const {
  auto te = header("Transfer-Encoding");
  return te && contains_token(*te, "chunked");
}

namespace {
// The body without its transfer coding into `out` (and the trailers when asked for them).
void unchunk_into(const HttpView& view, std::size_t max_size, std::string& out, std::string& error,
                  std::vector<HttpHeader>* trailers) {
  std::string_view raw = view.raw_body();
  if (view.chunked()) {
    out = dechunk(raw, error, max_size, trailers);
  } else {
    if (auto cl = view.header("Content-Length")) {
      std::uint64_t n = 0;
      auto [ptr, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), n);
      if (ec == std::errc{} && ptr == cl->data() + cl->size()) {
        if (n < raw.size()) raw = raw.substr(0, n);
        else if (n > raw.size()) error = "body shorter than Content-Length";
      }
    }
    if (raw.size() > max_size) {
      raw = raw.substr(0, max_size);
      error = "body larger than the limit";
    }
    out.assign(raw);
  }
}
}  // namespace

FramedBody unframe_body(const HttpView& view, std::size_t max_size) {
  FramedBody out;
  unchunk_into(view, max_size, out.bytes, out.error, &out.trailers);
  return out;
}

DecodedBody decode_body(const HttpView& view, std::size_t max_size) {
  DecodedBody out;
  unchunk_into(view, max_size, out.bytes, out.error, nullptr);
  auto encoding = view.header("Content-Encoding");
  if (!encoding || out.bytes.empty()) return out;
  std::string_view enc = trim_ows(*encoding);
  if (iequals(enc, "identity")) return out;
  std::string inflated, error;
  bool gzip = iequals(enc, "gzip") || iequals(enc, "x-gzip");
  bool deflate = iequals(enc, "deflate");
  if (!gzip && !deflate) {
    if (out.error.empty()) out.error = "unsupported content-encoding " + std::string(enc);
    return out;
  }
  // "deflate" is zlib-wrapped by the RFC, raw deflate by some servers: accept both.
  if (detail::inflate_into(out.bytes, 15 + 32, inflated, error, max_size) ||
      (deflate && detail::inflate_into(out.bytes, -15, inflated, error, max_size))) {
    out.bytes = std::move(inflated);
    if (out.error.empty()) out.error = error;
  } else if (out.error.empty()) {
    out.error = "invalid " + std::string(enc) + " body";
  }
  return out;
}

namespace {
struct HeaderSpan {
  std::size_t value_begin, value_end, line_begin, line_end;  // line_end includes the newline
};

std::vector<HeaderSpan> find_headers(std::string_view payload, std::string_view name, std::size_t& head_end) {
  std::vector<HeaderSpan> spans;
  std::size_t end = find_head_end(payload);
  head_end = end == std::string_view::npos ? payload.size() : end;
  std::size_t pos = payload.find('\n');
  if (pos == std::string_view::npos) return spans;
  ++pos;
  bool continues_match = false;
  while (pos < head_end) {
    std::size_t nl = payload.find('\n', pos);
    if (nl == std::string_view::npos || nl >= head_end) nl = head_end - 1;
    std::string_view line = payload.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t') {
      // obs-fold (RFC 9112 §5.2): the line continues the header above and is never a header of
      // its own; a matched header's span takes its continuation lines along.
      if (continues_match) {
        spans.back().value_end = pos + line.size();
        spans.back().line_end = nl + 1;
      }
      pos = nl + 1;
      continue;
    }
    continues_match = false;
    auto colon = line.find(':');
    if (colon != std::string_view::npos && iequals(trim_ows(line.substr(0, colon)), name)) {
      std::size_t vb = pos + colon + 1;
      while (vb < pos + line.size() && (payload[vb] == ' ' || payload[vb] == '\t')) ++vb;
      spans.push_back({vb, pos + line.size(), pos, nl + 1});
      continues_match = true;
    }
    pos = nl + 1;
  }
  return spans;
}
}  // namespace

std::string http_set_header(std::string_view payload, std::string_view name, std::string_view value) {
  std::size_t head_end = 0;
  auto spans = find_headers(payload, name, head_end);
  std::string out;
  if (!spans.empty()) {
    out.reserve(payload.size() + value.size());
    out.append(payload.substr(0, spans[0].value_begin));
    out.append(value);
    out.append(payload.substr(spans[0].value_end));
    return out;
  }
  // Insert before the blank line, keeping the message's own line ending.
  std::size_t first_nl = payload.find('\n');
  bool crlf = first_nl != std::string_view::npos && first_nl > 0 && payload[first_nl - 1] == '\r';
  std::size_t insert_at = head_end;
  // Before the blank line, whichever ending it has: a head that mixes endings (LF lines, a CRLF
  // blank line) must not get the new line between the blank line's CR and LF.
  if (head_end >= 2 && payload.substr(head_end - 2, 2) == "\r\n") insert_at = head_end - 2;
  else if (head_end >= 1 && payload[head_end - 1] == '\n') insert_at = head_end - 1;
  out.append(payload.substr(0, insert_at));
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append(crlf ? "\r\n" : "\n");
  out.append(payload.substr(insert_at));
  return out;
}

std::string http_remove_header(std::string_view payload, std::string_view name) {
  std::size_t head_end = 0;
  auto spans = find_headers(payload, name, head_end);
  std::string out;
  std::size_t from = 0;
  for (const auto& s : spans) {
    out.append(payload.substr(from, s.line_begin - from));
    from = s.line_end;
  }
  out.append(payload.substr(from));
  return out;
}

std::string http_set_target(std::string_view payload, std::string_view target) {
  // From the method on, as HttpView reads the start line (trim_ows: spaces and tabs before it
  // are not a separator; a CR there is part of the method, as HttpView takes it).
  auto start = payload.find_first_not_of(" \t");
  if (start == std::string_view::npos) return std::string(payload);
  auto sp1 = payload.find(' ', start);
  if (sp1 == std::string_view::npos) return std::string(payload);
  auto sp2 = payload.find(' ', sp1 + 1);
  auto nl = payload.find('\n');
  if (sp2 == std::string_view::npos || (nl != std::string_view::npos && sp2 > nl)) return std::string(payload);
  std::string out;
  out.reserve(payload.size() + target.size());
  out.append(payload.substr(0, sp1 + 1));
  out.append(target);
  out.append(payload.substr(sp2));
  return out;
}

}  // namespace doppel
