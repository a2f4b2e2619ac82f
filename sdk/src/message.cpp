#include "doppel/message.hpp"

#include <atomic>
#include <chrono>
#include <random>

namespace doppel {

Message::Message(const Message& other)
    : kind(other.kind),
      id(other.id),
      timestamp_ns(other.timestamp_ns),
      latency_ns(other.latency_ns),
      meta(other.meta),
      payload(other.payload) {}

Message::Message(Message&& other) noexcept
    : kind(other.kind),
      id(std::move(other.id)),
      timestamp_ns(other.timestamp_ns),
      latency_ns(other.latency_ns),
      meta(std::move(other.meta)),
      payload(std::move(other.payload)) {}

const HttpView& Message::http() const {
  std::call_once(http_once_, [this] { http_ = HttpView::parse(payload); });
  return http_;
}

const DecodedBody& Message::body() const {
  std::call_once(body_once_, [this] { body_ = decode_body(http()); });
  return body_;
}

std::string new_message_id() {
  // 8 random bytes per process + a 4-byte counter: unique in the process, unlikely to
  // collide across processes (capture agents on several hosts).
  static const std::uint64_t process_part = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
           static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }();
  static std::atomic<std::uint32_t> counter{0};
  std::uint32_t n = counter.fetch_add(1, std::memory_order_relaxed);
  static constexpr char hex[] = "0123456789abcdef";
  std::string id(24, '0');
  for (int i = 0; i < 16; ++i) id[i] = hex[(process_part >> (60 - 4 * i)) & 0xf];
  for (int i = 0; i < 8; ++i) id[16 + i] = hex[(n >> (28 - 4 * i)) & 0xf];
  return id;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace doppel
