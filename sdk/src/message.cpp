#include "doppel/message.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <vector>

namespace doppel {

Message::Message(const Message& other)
    : kind(other.kind),
      id(other.id),
      timestamp_ns(other.timestamp_ns),
      latency_ns(other.latency_ns),
      meta(other.meta),
      payload(other.payload),
      lease(other.lease) {}

Message::Message(Message&& other) noexcept
    : kind(other.kind),
      id(std::move(other.id)),
      timestamp_ns(other.timestamp_ns),
      latency_ns(other.latency_ns),
      meta(std::move(other.meta)),
      payload(std::move(other.payload)),
      lease(std::move(other.lease)) {}

const HttpView& Message::http() const {
  http_once_([this] {
    auto parsed = std::make_unique<Parsed>();
    parsed->http = HttpView::parse(payload);
    parsed_ = std::move(parsed);
  });
  return parsed_->http;
}

const DecodedBody& Message::body() const {
  body_once_([this] {
    const HttpView& view = http();  // creates parsed_
    parsed_->body = decode_body(view);
  });
  return parsed_->body;
}

std::shared_ptr<const void> join_leases(std::initializer_list<std::shared_ptr<const void>> leases) {
  std::vector<std::shared_ptr<const void>> distinct;
  for (const auto& lease : leases) {
    // Ownership, not the pointer: a lease may own a null pointer and act by its deleter only.
    auto same_owner = [&](const std::shared_ptr<const void>& held) {
      return !held.owner_before(lease) && !lease.owner_before(held);
    };
    if (lease.use_count() > 0 && std::none_of(distinct.begin(), distinct.end(), same_owner))
      distinct.push_back(lease);
  }
  if (distinct.empty()) return nullptr;
  if (distinct.size() == 1) return distinct.front();
  return std::make_shared<const std::vector<std::shared_ptr<const void>>>(std::move(distinct));
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
