#include "doppel/message.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
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
  // 48 random bits per process, then a 48-bit counter (it never wraps): unique in the
  // process, unlikely to collide across processes (capture agents on several hosts).
  static constexpr char kHex[] = "0123456789abcdef";
  auto write_hex = [](char* out, std::uint64_t bits) {  // 12 digits
    for (int i = 11; i >= 0; --i, bits >>= 4) out[i] = kHex[bits & 0xf];
  };
  static const std::array<char, 12> process_part = [&] {
    std::random_device rd;
    std::uint64_t bits = (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
                         static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    std::array<char, 12> text;
    write_hex(text.data(), bits);
    return text;
  }();
  // Each thread takes counter values in blocks: threads minting ids side by side (a capture
  // file read by several) do not fight over one cache line per id.
  static constexpr std::uint64_t kBlock = 256;
  static std::atomic<std::uint64_t> counter{0};
  thread_local std::uint64_t next = 0, end = 0;
  if (next == end) {
    next = counter.fetch_add(kBlock, std::memory_order_relaxed);
    end = next + kBlock;
  }
  std::string id(24, '0');
  std::memcpy(id.data(), process_part.data(), process_part.size());
  write_hex(id.data() + 12, next++);
  return id;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace doppel
