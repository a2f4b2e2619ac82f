#pragma once
// The compare stage's threads: one per shard, each with a bounded queue of its own. The
// messages of one shard (and so of one id) are handled in arrival order by one thread, while
// the other shards' are judged on the other cores.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "doppel/message.hpp"

namespace doppel::plugins {

class ShardWorkers {
 public:
  // Called on the shard's thread, one message at a time per shard.
  using Handler = std::function<void(std::size_t shard, const MessagePtr& message)>;

  ShardWorkers(std::size_t shards, std::size_t capacity, Handler handler);
  ~ShardWorkers();
  ShardWorkers(const ShardWorkers&) = delete;
  ShardWorkers& operator=(const ShardWorkers&) = delete;

  // Queues `message` for `shard`; waits while that shard's queue is full (back-pressure).
  // False once stopped.
  bool push(std::size_t shard, MessagePtr message);
  // Returns once every message queued so far was handled.
  void wait_idle();
  // Messages queued or being handled.
  std::size_t backlog() const;
  // Lets each thread finish the messages in hand, then joins the threads. Returns how many
  // queued messages were left unhandled. Idempotent.
  std::size_t stop();

 private:
  struct Queue {
    std::mutex mutex;
    std::condition_variable ready, room, idle;
    std::deque<MessagePtr> messages;
    std::size_t in_hand = 0;  // taken off the queue, not yet handled
    bool stopping = false;
    std::thread thread;
  };
  void run(Queue& queue, std::size_t shard);

  Handler handler_;
  std::size_t capacity_;
  std::vector<std::unique_ptr<Queue>> queues_;
};

}  // namespace doppel::plugins
