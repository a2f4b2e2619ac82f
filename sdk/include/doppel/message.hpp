#pragma once
// The message model: one HTTP payload plus meta, immutable once emitted and shared (not
// copied) when it fans out to several stages.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "doppel/http.hpp"
#include "doppel/kinds.hpp"

namespace doppel {

struct Endpoint {
  std::string address;  // textual IPv4/IPv6 address, "" when unknown
  std::uint16_t port = 0;
};

struct MessageMeta {
  Endpoint source;
  Endpoint destination;
  std::uint64_t connection_id = 0;  // equal for messages of one TCP connection, 0 when unknown
  std::string stage;                // which stage emitted it
  bool incomplete = false;          // parts of the payload were not seen (gap, snaplen)
  std::string error;                // replay: why there is no response ("refused", "timeout", ...)
};

class Message {
 public:
  Kind kind = Kind::request;
  std::string id;                // links a request with its responses (GoReplay: 24 hex chars)
  std::int64_t timestamp_ns = 0; // request start / response arrival, ns since epoch
  std::int64_t latency_ns = 0;   // responses only
  MessageMeta meta;
  std::string payload;           // raw HTTP/1.x bytes as on the wire (verdict: JSON)

  Message() = default;
  Message(Kind k, std::string message_id, std::int64_t timestamp, std::string bytes)
      : kind(k), id(std::move(message_id)), timestamp_ns(timestamp), payload(std::move(bytes)) {}
  Message(const Message& other);      // copies everything but the lazily parsed views
  Message(Message&& other) noexcept;  // moves everything but the lazily parsed views
  Message& operator=(const Message&) = delete;

  // Parsed at most once, on first use, thread-safe.
  const HttpView& http() const;
  const DecodedBody& body() const;

 private:
  mutable std::once_flag http_once_, body_once_;
  mutable HttpView http_;
  mutable DecodedBody body_;
};

using MessagePtr = std::shared_ptr<const Message>;

// Shares `m` as an immutable message.
inline MessagePtr share(Message&& m) { return std::make_shared<const Message>(std::move(m)); }

// A fresh GoReplay-style id: 24 lowercase hex characters, unique within the process.
std::string new_message_id();

// Current wall clock time in ns since the epoch.
std::int64_t now_ns();

}  // namespace doppel
