#pragma once
// A read-only view over one HTTP/1.x message as captured: start line, headers, body.
// Views point into the bytes they were parsed from; they never own or copy them.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace doppel {

struct HttpHeader {
  std::string_view name;
  std::string_view value;
};

class HttpView {
 public:
  // Parses the start line and headers of `bytes`. Never throws; check ok().
  static HttpView parse(std::string_view bytes);

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // A valid request line / status line was read (headers may still be malformed: see ok()).
  bool is_request() const { return is_request_; }
  bool is_response() const { return status_ != 0; }

  // Request line ("" on responses).
  std::string_view method() const { return method_; }
  std::string_view target() const { return target_; }  // "/a/b?x=1" as sent
  std::string_view path() const;                         // target without the query
  std::string_view query() const;                        // after '?', "" when none
  // Status line (0 / "" on requests).
  int status() const { return status_; }
  std::string_view reason() const { return reason_; }
  std::string_view version() const { return version_; }  // "HTTP/1.1"

  const std::vector<HttpHeader>& headers() const { return headers_; }
  // First header with this name, compared case-insensitively.
  std::optional<std::string_view> header(std::string_view name) const;

  std::size_t head_size() const { return head_size_; }  // bytes up to and including the blank line
  std::string_view raw_body() const { return raw_body_; }  // body bytes as on the wire (maybe chunked)
  bool chunked() const;

 private:
  std::string error_;
  bool is_request_ = false;
  std::string_view method_, target_, version_, reason_;
  int status_ = 0;
  std::vector<HttpHeader> headers_;
  std::size_t head_size_ = 0;
  std::string_view raw_body_;
};

struct DecodedBody {
  std::string bytes;   // chunked framing removed, gzip/deflate undone
  std::string error;   // why decoding stopped early ("" when complete)
};

// The body with its transfer coding undone and its content coding kept (the bytes HTTP/2 carries
// in DATA frames), and the trailer fields after a chunked body (views into the viewed bytes).
struct FramedBody {
  std::string bytes;
  std::vector<HttpHeader> trailers;
  std::string error;  // why unframing stopped early ("" when complete)
};
FramedBody unframe_body(const HttpView& view, std::size_t max_size = std::size_t{256} << 20);

// Undoes chunked transfer coding and gzip/deflate content coding. Bounded by `max_size`
// decoded bytes (a decompression bomb stops there with an error).
DecodedBody decode_body(const HttpView& view, std::size_t max_size = std::size_t{256} << 20);

// Case-insensitive ASCII comparison, as header names need.
bool iequals(std::string_view a, std::string_view b);
// Without leading/trailing spaces and tabs (and a trailing CR), as header values are read.
std::string_view trim_ows(std::string_view s);

// Payload edits that keep every other byte as it was (no re-serialization).
// Replaces the value of the first header `name` or appends the header when absent.
std::string http_set_header(std::string_view payload, std::string_view name, std::string_view value);
// Removes every header `name`.
std::string http_remove_header(std::string_view payload, std::string_view name);
// Replaces the request target in the request line.
std::string http_set_target(std::string_view payload, std::string_view target);

}  // namespace doppel
