#include "shard_workers.hpp"

#include <algorithm>

namespace doppel::plugins {

// Messages a thread takes off its queue at once: one lock per batch, not per message.
constexpr std::size_t kBatch = 64;

ShardWorkers::ShardWorkers(std::size_t shards, std::size_t capacity, Handler handler)
    : handler_(std::move(handler)), capacity_(std::max<std::size_t>(capacity, 1)) {
  for (std::size_t i = 0; i < shards; ++i) queues_.push_back(std::make_unique<Queue>());
  for (std::size_t i = 0; i < shards; ++i) queues_[i]->thread = std::thread([this, i] { run(*queues_[i], i); });
}

ShardWorkers::~ShardWorkers() { stop(); }

bool ShardWorkers::push(std::size_t shard, MessagePtr message) {
  Queue& q = *queues_[shard];
  std::unique_lock lock(q.mutex);
  q.room.wait(lock, [&] { return q.stopping || q.messages.size() < capacity_; });
  if (q.stopping) return false;
  q.messages.push_back(std::move(message));
  q.ready.notify_one();
  return true;
}

void ShardWorkers::run(Queue& q, std::size_t shard) {
  std::vector<MessagePtr> batch;
  batch.reserve(kBatch);
  for (;;) {
    {
      std::unique_lock lock(q.mutex);
      q.in_hand = 0;
      if (q.messages.empty()) q.idle.notify_all();
      q.ready.wait(lock, [&] { return q.stopping || !q.messages.empty(); });
      if (q.stopping) return;
      while (!q.messages.empty() && batch.size() < kBatch) {
        batch.push_back(std::move(q.messages.front()));
        q.messages.pop_front();
      }
      q.in_hand = batch.size();
      q.room.notify_all();
    }
    for (const auto& m : batch) handler_(shard, m);
    batch.clear();
  }
}

void ShardWorkers::wait_idle() {
  for (auto& q : queues_) {
    std::unique_lock lock(q->mutex);
    q->idle.wait(lock, [&] { return q->stopping || (q->messages.empty() && q->in_hand == 0); });
  }
}

std::size_t ShardWorkers::backlog() const {
  std::size_t n = 0;
  for (const auto& q : queues_) {
    std::lock_guard lock(q->mutex);
    n += q->messages.size() + q->in_hand;
  }
  return n;
}

std::size_t ShardWorkers::stop() {
  std::size_t left = 0;
  for (auto& q : queues_) {
    std::lock_guard lock(q->mutex);
    q->stopping = true;
    q->ready.notify_all();
    q->room.notify_all();
    q->idle.notify_all();
  }
  for (auto& q : queues_) {
    if (q->thread.joinable()) q->thread.join();
    std::lock_guard lock(q->mutex);
    left += q->messages.size();
    q->messages.clear();
  }
  return left;
}

}  // namespace doppel::plugins
