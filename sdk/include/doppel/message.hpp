#pragma once
// The message model: one HTTP payload plus meta, immutable once emitted and shared (not
// copied) when it fans out to several stages.
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "doppel/http.hpp"
#include "doppel/kinds.hpp"

namespace doppel {

namespace detail {
// Runs a function once, like std::call_once, but without a system call: glibc's call_once
// wakes futex waiters unconditionally, one syscall per message parsed.
class RunOnce {
 public:
  template <class F>
  void operator()(F&& f) const {
    for (;;) {
      std::uint8_t state = state_.load(std::memory_order_acquire);
      if (state == kDone) return;
      if (state == kIdle && state_.compare_exchange_strong(state, kRunning, std::memory_order_acquire)) {
        try {
          f();
        } catch (...) {
          state_.store(kIdle, std::memory_order_release);  // like call_once: the next caller retries
          throw;
        }
        state_.store(kDone, std::memory_order_release);
        return;
      }
      std::this_thread::yield();  // another thread is parsing it: rare, and a parse is short
    }
  }
  // Not done yet, again (MessagePool, for a message no one holds any more).
  void reset() { state_.store(kIdle, std::memory_order_relaxed); }

 private:
  static constexpr std::uint8_t kIdle = 0, kRunning = 1, kDone = 2;
  mutable std::atomic<std::uint8_t> state_{kIdle};
};
}  // namespace detail

struct Endpoint {
  std::string address;  // textual IPv4/IPv6 address, "" when unknown
  std::uint16_t port = 0;
};

// How an exchange captured inside TLS was protected (the raw input decrypts it with a key
// log, docs/guide/tls.md). One per connection, shared by its messages. Never a secret.
struct TlsMeta {
  std::string version;      // "TLSv1.2", "TLSv1.3"
  std::string cipher;       // the cipher suite's IANA name, e.g. "TLS_AES_128_GCM_SHA256"
  std::string server_name;  // the ClientHello's SNI, "" when none was sent
  std::string alpn;         // the protocol the server selected ("h2", "http/1.1"), "" when none
};

struct MessageMeta {
  Endpoint source;
  Endpoint destination;
  std::uint64_t connection_id = 0;  // equal for messages of one TCP connection, 0 when unknown
  std::string stage;                // which stage emitted it
  bool incomplete = false;          // parts of the payload were not seen (gap, snaplen)
  std::string error;                // replay: why there is no response ("refused", "timeout", ...)
  // The protocol the exchange travelled in when it was not HTTP/1.x: "h2" (the payload is then
  // the HTTP/1.1 form of an HTTP/2 stream, doppel/http2.hpp). "" for HTTP/1.x.
  std::string proto;
  std::uint32_t stream_id = 0;      // h2: the stream that carried it on its connection
  std::shared_ptr<const TlsMeta> tls;  // captured inside TLS and decrypted; null when cleartext
};

class Message {
 public:
  Kind kind = Kind::request;
  std::string id;                // links a request with its responses (GoReplay: 24 hex chars)
  std::int64_t timestamp_ns = 0; // request start / response arrival, ns since epoch
  std::int64_t latency_ns = 0;   // responses only
  MessageMeta meta;
  std::string payload;           // raw HTTP/1.x bytes as on the wire (verdict: JSON)
  // Held as long as this message, or any message derived from it, is alive; a source (e.g.
  // the nats input) uses its destructor to acknowledge the source once the pipeline is done.
  // Copies carry it; a stage that builds a new message out of an old one copies it over.
  std::shared_ptr<const void> lease;

  Message() = default;
  Message(Kind k, std::string message_id, std::int64_t timestamp, std::string bytes)
      : kind(k), id(std::move(message_id)), timestamp_ns(timestamp), payload(std::move(bytes)) {}
  Message(const Message& other);      // copies everything (lease included) but the lazily parsed views
  Message(Message&& other) noexcept;  // moves everything (lease included) but the lazily parsed views
  Message& operator=(const Message&) = delete;

  // Parsed at most once, on first use, thread-safe.
  const HttpView& http() const;
  const DecodedBody& body() const;

 private:
  // The parsed views live apart, allocated on first use: most messages of a capture are
  // never parsed, and a small message is cheaper to build, share and free.
  struct Parsed {
    HttpView http;
    DecodedBody body;
  };
  detail::RunOnce http_once_, body_once_;
  mutable std::unique_ptr<Parsed> parsed_;

  friend class MessagePool;
};

using MessagePtr = std::shared_ptr<const Message>;

// Shares `m` as an immutable message.
inline MessagePtr share(Message&& m) { return std::make_shared<const Message>(std::move(m)); }

// One lease holding every lease given (for a message built out of several, e.g. a verdict):
// null when all are null, the lease itself when they are all the same one.
std::shared_ptr<const void> join_leases(std::initializer_list<std::shared_ptr<const void>> leases);

// A fresh GoReplay-style id: 24 lowercase hex characters, unique within the process.
std::string new_message_id();

// Current wall clock time in ns since the epoch.
std::int64_t now_ns();

}  // namespace doppel
