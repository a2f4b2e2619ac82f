#pragma once
// HTTP/2 streams in doppel's message model. An HTTP/2 request or response travels as the
// HTTP/1.1 form of its stream (MessageMeta::proto = "h2"), so that .gor files, filters,
// comparators, reports and GoReplay middleware read it unchanged, and it is turned back into
// header fields, DATA and trailers when it is replayed over HTTP/2:
//   - the start line from :method and :path (requests; CONNECT's target is :authority) or
//     :status (responses, with the standard reason phrase), version HTTP/1.1;
//   - `host` from :authority, first; then the header fields in their order, names as received
//     (HTTP/2 sends them in lower case);
//   - the body is the concatenated DATA. Without trailers it is framed by content-length (the
//     stream's own, or one added); with trailers (gRPC's grpc-status) it is one chunk of a
//     `transfer-encoding: chunked` body and the trailers follow it, and a content-length the
//     stream carried is left out (HTTP/1.1 forbids both).
// docs/guide/http2-grpc.md shows examples.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace doppel::h2 {

struct Field {
  std::string name;
  std::string value;
};

// One direction of one stream: the header block (pseudo-header fields first), DATA, trailers.
struct StreamMessage {
  std::vector<Field> headers;
  std::string body;
  std::vector<Field> trailers;
};

// The HTTP/1.1 form of a stream's request or response (which one: :method or :status). Returns
// nullopt with `error` when the stream is malformed for HTTP/2 (RFC 9113 8.1.1, 8.2, 8.3): a
// pseudo-header missing, repeated, unknown or after a regular field, a field name with upper
// case or a value with CR, LF or NUL, a content-length that the DATA contradicts. Nothing is
// guessed: such a stream is counted and skipped by the caller. `answers_head`: the response
// answers a HEAD request (its content-length describes a body that is not sent).
std::optional<std::string> to_http1(const StreamMessage& message, std::string& error, bool answers_head = false);

// A request's HTTP/1.1 form (a captured h2 request, or any HTTP/1.x request) as HTTP/2 header
// fields, DATA and trailers: :method, :scheme (`scheme`), :authority (from Host), :path, then
// the other fields lower-cased, without those HTTP/2 forbids (connection, keep-alive,
// proxy-connection, transfer-encoding, upgrade, http2-settings; te other than "trailers").
// nullopt with `error` when the payload is not a request doppel can send (no Host, bad framing).
std::optional<StreamMessage> request_from_http1(std::string_view payload, std::string_view scheme, std::string& error);

// The standard reason phrase of a status code ("" for one without).
std::string_view reason_phrase(int status);

}  // namespace doppel::h2
