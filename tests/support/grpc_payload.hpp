#pragma once
// For tests: gRPC messages and responses in the HTTP/1.1 form doppel carries HTTP/2 in
// (doppel/http2.hpp): DATA as one chunk of a chunked body, grpc-status and grpc-message as
// trailers, or in the headers of a trailers-only response.
#include <cstdint>
#include <cstdio>
#include <string>

namespace doppel::testing {

// One gRPC message as it travels: compressed flag, 4-byte big-endian length, the bytes.
inline std::string grpc_frame(const std::string& message, bool compressed = false) {
  std::string out(1, compressed ? '\1' : '\0');
  auto n = static_cast<std::uint32_t>(message.size());
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((n >> shift) & 0xFF);
  return out + message;
}

// A response whose body is `body` (concatenated frames) followed by the status trailers.
// `extra_headers`: more header lines, each ending in \r\n (grpc-encoding: gzip\r\n).
inline std::string grpc_response(const std::string& body, const std::string& status = "0",
                                 const std::string& message = "", const std::string& extra_headers = "",
                                 const std::string& content_type = "application/grpc") {
  std::string out = "HTTP/1.1 200 OK\r\ncontent-type: " + content_type + "\r\n" + extra_headers +
                    "transfer-encoding: chunked\r\n\r\n";
  if (!body.empty()) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", body.size());
    out += size + body + "\r\n";
  }
  out += "0\r\ngrpc-status: " + status + "\r\n";
  if (!message.empty()) out += "grpc-message: " + message + "\r\n";
  return out + "\r\n";
}

// A trailers-only response: no messages, the status in the headers.
inline std::string grpc_trailers_only(const std::string& status, const std::string& message = "") {
  return "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ngrpc-status: " + status + "\r\n" +
         (message.empty() ? "" : "grpc-message: " + message + "\r\n") + "content-length: 0\r\n\r\n";
}

}  // namespace doppel::testing
