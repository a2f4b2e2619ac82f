#pragma once
// gRPC over doppel's HTTP/2 messages (doppel/http2.hpp): a gRPC request or response travels as
// an HTTP/1.1-form message whose body is the concatenated DATA, i.e. a sequence of
// length-prefixed messages (1 byte compressed flag, 4 bytes big-endian length, the message),
// and whose trailers (after a chunked body) carry grpc-status and grpc-message. A trailers-only
// response (an error without messages) carries them in its headers instead.
//
// Only the gRPC HTTP/2 protocol is read here: content types application/grpc and
// application/grpc+FORMAT. gRPC-Web (application/grpc-web*), whose trailers travel inside the
// body and whose text form is base64, is not.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "doppel/http.hpp"

namespace doppel::grpc {

// True for `application/grpc` and `application/grpc+proto`, `application/grpc+json`, ... with
// or without parameters (`; charset=...`), case-insensitively; false for gRPC-Web and the rest.
bool is_grpc_content_type(std::string_view content_type);

// The messages of a gRPC body, each with its compression undone.
struct Messages {
  std::vector<std::string> messages;
  // Why splitting stopped before the end of the body ("" when every byte was read): a length
  // prefix that exceeds the data, a truncated prefix, a compressed message without a usable
  // grpc-encoding, a message that does not inflate, the size limit. `messages` holds those
  // before the one that failed.
  std::string error;
};

// Splits `body` into its messages. `encoding` is the grpc-encoding header ("" when absent):
// identity, gzip and deflate are understood; a message whose compressed flag is set needs one
// of gzip or deflate. At most `max_size` bytes of messages in all (a decompression bomb stops
// there with an error). Never throws on bad bytes.
Messages split_messages(std::string_view body, std::string_view encoding,
                        std::size_t max_size = std::size_t{256} << 20);

// Percent-decoding as grpc-message is sent (%XX, any case). A malformed escape is kept as it is,
// as the gRPC spec asks of receivers.
std::string percent_decode(std::string_view text);

// The standard name of a status code ("OK", "NOT_FOUND", ...); "" for codes beyond 16.
std::string_view status_name(int code);

struct Status {
  std::optional<int> code;  // grpc-status; nullopt when absent or not a decimal number
  std::string code_text;    // grpc-status as sent (trimmed), "" when absent
  std::string message;      // grpc-message, percent-decoded ("" when absent)
  bool has_message = false;  // grpc-message was present (even if empty)
  bool trailers_only = false;  // read from the headers: a trailers-only response
};

// A gRPC response read through its HTTP/1.1 form: status from the trailers, or from the headers
// of a trailers-only response; messages from the body.
struct Response {
  bool is_grpc = false;  // the content-type is gRPC (see is_grpc_content_type)
  Status status;
  Messages body;
};

// Reads `view` (a request or a response) as gRPC: unframes the body (transfer coding), splits
// it into messages, and reads the status. A content coding on the HTTP level (Content-Encoding
// other than identity) is not how gRPC compresses, and is reported in body.error.
Response read_response(const HttpView& view, std::size_t max_size = std::size_t{256} << 20);

}  // namespace doppel::grpc
