#pragma once
// The queue in front of each stage: bounded, many producers, one consumer (the stage worker).
//
// Bounded by bytes (payloads plus a fixed cost per message) as well as by messages: what a
// queue must absorb is a stall of its stage (a busy CPU, a slow disk) of a few hundred
// milliseconds, and how many messages that is depends on their size. 64 MiB holds about a
// second of a 200k msg/s capture of small exchanges; 4096 messages held 20 ms of it.
//
// Wake-ups are batched (performance): a consumer woken for every message costs a futex call
// and a context switch per message, which dominated a 400k msg/s capture. After draining the
// queue the consumer first *lingers* up to kLinger, and producers wake it only once kWakeBatch
// items wait; only then does it fall *asleep*, and the next push wakes it at once. So an idle
// stage still sees a lone message without delay, and a busy one takes messages in batches,
// at most kLinger late. Lingering only pays where messages come one or a few at a time: after
// a producer's batch of kNoLingerBatch or more (a capture's packet block, a file's window) the
// consumer sleeps at once, and the next batch wakes it; a timed linger there would cost a
// second wake-up per batch (live capture: 0.112 -> 0.095 CPU s per 100k requests).
//
// Producers waiting for room (back-pressure) are woken the same way: once the consumer has
// taken a quarter of the queue, not after every batch it takes. Woken after every 64
// messages, two capture threads and the consumer took turns on the CPUs 60 times as often.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <utility>
#include <vector>

#include "doppel/message.hpp"

namespace doppel::core {

class BoundedQueue {
 public:
  enum class Push { ok, full, closed };

  // What a message costs against the byte bound: its payload and its bookkeeping.
  static constexpr std::size_t kMessageOverhead = sizeof(Message) + 64;
  static std::size_t cost(const MessagePtr& message) { return message ? message->payload.size() + kMessageOverhead : 0; }

  explicit BoundedQueue(std::size_t capacity, std::uint64_t max_bytes = UINT64_MAX)
      : capacity_(capacity),
        max_bytes_(std::max<std::uint64_t>(1, max_bytes)),
        wake_batch_(std::max<std::size_t>(1, std::min(kWakeBatch, capacity))),
        resume_level_(capacity - std::max<std::size_t>(1, capacity / 4)),
        resume_bytes_(max_bytes_ - std::max<std::uint64_t>(1, max_bytes_ / 4)) {}

  // wait = true blocks until there is room (or the queue closes, or `abort` becomes true).
  Push push(MessagePtr message, bool wait, const std::atomic<bool>& abort) {
    std::size_t size = cost(message);
    std::unique_lock lock(mutex_);
    while (full() && !closed_) {
      if (!wait || abort.load()) return Push::full;
      wait_for_room(lock);
    }
    if (closed_) return Push::closed;
    bytes_ += size;
    items_.push_back({std::move(message), size});
    batched_ = false;
    bool wake = claim_wake();
    lock.unlock();
    if (wake) not_empty_.notify_one();
    return Push::ok;
  }

  // Pushes `messages` in order, as far as room allows (waiting for room when `wait`), taking
  // them out of the vector. Returns how many were pushed, and whether the rest was refused
  // because the queue is full or closed.
  std::pair<std::size_t, Push> push_batch(std::vector<MessagePtr>& messages, bool wait,
                                          const std::atomic<bool>& abort) {
    std::unique_lock lock(mutex_);
    std::size_t i = 0;
    while (i < messages.size()) {
      while (full() && !closed_) {
        if (claim_wake()) not_empty_.notify_one();  // what this batch filled must be taken
        if (!wait || abort.load()) return {i, Push::full};
        wait_for_room(lock);
      }
      if (closed_) return {i, Push::closed};
      while (i < messages.size() && !full()) {
        std::size_t size = cost(messages[i]);
        bytes_ += size;
        items_.push_back({std::move(messages[i++]), size});
      }
    }
    batched_ = messages.size() >= kNoLingerBatch;
    bool wake = claim_wake();
    lock.unlock();
    if (wake) not_empty_.notify_one();
    return {i, Push::ok};
  }

  // Control items (the flush marker, a null pointer) ignore the capacity.
  void push_control(MessagePtr message) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back({std::move(message), 0});
      consumer_ = Consumer::awake;
    }
    not_empty_.notify_one();
  }

  // Takes up to `max` items, waiting for the first. False once closed and empty.
  bool pop_batch(std::vector<MessagePtr>& out, std::size_t max) {
    std::unique_lock lock(mutex_);
    if (items_.empty() && !closed_) {
      if (!batched_) {
        consumer_ = Consumer::lingering;
        not_empty_.wait_for(lock, kLinger, [&] { return consumer_ == Consumer::awake || closed_; });
      }
      if (items_.empty() && !closed_) {
        consumer_ = Consumer::asleep;
        not_empty_.wait(lock, [&] { return !items_.empty() || closed_; });
      }
    }
    consumer_ = Consumer::awake;
    if (items_.empty()) return false;
    std::size_t n = std::min(max, items_.size());
    for (std::size_t i = 0; i < n; ++i) {
      bytes_ -= items_.front().cost;
      out.push_back(std::move(items_.front().message));
      items_.pop_front();
    }
    bool room = waiting_producers_ > 0 && items_.size() <= resume_level_ && bytes_ <= resume_bytes_;
    lock.unlock();
    if (room) not_full_.notify_all();
    return true;
  }

  // Refuses further pushes; returns how many messages were still queued (and discards them
  // when `discard` is set).
  std::size_t close(bool discard) {
    std::size_t left = 0;
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
      consumer_ = Consumer::awake;
      for (const auto& item : items_) left += item.message ? 1 : 0;
      if (discard) {
        items_.clear();
        bytes_ = 0;
      }
    }
    not_empty_.notify_all();
    not_full_.notify_all();
    return left;
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return items_.size();
  }
  std::size_t capacity() const { return capacity_; }
  std::uint64_t bytes() const {
    std::lock_guard lock(mutex_);
    return bytes_;
  }
  std::uint64_t max_bytes() const { return max_bytes_; }

 private:
  // Under the lock. A message is taken while the queue is under both bounds, so one large
  // message always fits in an empty queue.
  bool full() const { return items_.size() >= capacity_ || bytes_ >= max_bytes_; }

  // Under the lock: a producer waits until the consumer made room (the timeout is a safety net).
  void wait_for_room(std::unique_lock<std::mutex>& lock) {
    ++waiting_producers_;
    not_full_.wait_for(lock, std::chrono::milliseconds(50));
    --waiting_producers_;
  }

  // Under the lock, after pushing: whether the consumer must be woken now (asleep, or
  // lingering with a batch waiting). Marks it awake, so that one notify is enough.
  bool claim_wake() {
    bool wake = consumer_ == Consumer::asleep ||
                (consumer_ == Consumer::lingering && (items_.size() >= wake_batch_ || full()));
    if (wake) consumer_ = Consumer::awake;
    return wake;
  }

  const std::size_t capacity_;
  const std::uint64_t max_bytes_;
  const std::size_t wake_batch_;  // a full queue always wakes its consumer
  const std::size_t resume_level_;  // waiting producers are woken once the queue is down to this
  const std::uint64_t resume_bytes_;  // ... and to this many bytes
  std::uint64_t bytes_ = 0;           // cost of what is queued
  std::size_t waiting_producers_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable not_empty_, not_full_;
  struct Item {
    MessagePtr message;
    std::size_t cost;  // what it added to bytes_
  };
  std::deque<Item> items_;
  bool closed_ = false;
  bool batched_ = false;  // the last push was a batch of kNoLingerBatch or more: the consumer need not linger
  static constexpr std::size_t kWakeBatch = 512;
  static constexpr std::size_t kNoLingerBatch = 64;
  static constexpr std::chrono::milliseconds kLinger{1};
  enum class Consumer { awake, lingering, asleep };
  Consumer consumer_ = Consumer::awake;  // what the worker is doing, for push to decide on waking it
};

}  // namespace doppel::core
