#pragma once
// GoReplay's .gor record format: "TYPE ID TIMESTAMP LATENCY\n" + payload, records separated
// by "\n🐵🙈🙉\n". Shared by the file input, the file and stdout outputs, the process
// middleware and the NATS plugins so that every one of them reads and writes the same bytes.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "doppel/message.hpp"

namespace doppel::gor {

inline constexpr std::string_view kSeparator = "\n\xF0\x9F\x90\xB5\xF0\x9F\x99\x88\xF0\x9F\x99\x89\n";

// "1 8e0f...c2 1700000000000000000 0\n" — the header line, newline included. Messages that
// travelled over HTTP/2 add doppel's fields: "... 0 proto=h2 stream=5\n"; messages decrypted
// from TLS: "... 0 tls=TLSv1.3 cipher=TLS_AES_128_GCM_SHA256 sni=api.example alpn=h2\n".
std::string format_header(const Message& message);
// The " tls=... cipher=... sni=... alpn=..." fields of a header line.
void append_tls_fields(std::string& out, const TlsMeta& tls);
// The same, appended to `out` (a writer reusing one buffer allocates nothing per record).
void append_header(std::string& out, const Message& message);
// The header and payload of one record, without the separator.
std::string format_record(const Message& message);

struct Header {
  Kind kind = Kind::request;
  std::string id;
  std::int64_t timestamp_ns = 0;
  std::int64_t latency_ns = 0;
  std::string proto;            // doppel's "proto=" field: MessageMeta::proto
  std::uint32_t stream_id = 0;  // doppel's "stream=" field
  // doppel's "tls=", "cipher=", "sni=" and "alpn=" fields: MessageMeta::tls, null without "tls=".
  std::shared_ptr<const TlsMeta> tls;
};
// Parses a header line (without its newline). nullopt when it is not a valid header.
std::optional<Header> parse_header(std::string_view line);
// Parses "header\npayload" into a message; nullopt when the header is not valid.
std::optional<Message> parse_record(std::string_view record);

}  // namespace doppel::gor
