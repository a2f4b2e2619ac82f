#pragma once
// Several threads extract the messages of one capture file, each from the connections it
// owns (see FrameSplitter). This puts their output back in capture order, one window of
// frames at a time: the messages of window w leave (thread by thread, each in its own order)
// after every message of window w - 1, however the threads are paced. Nothing waits in the
// common case; a thread that runs kSlots windows ahead of the slowest waits, which bounds
// what is held here.
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "doppel/message.hpp"

namespace doppel::plugins::raw {

class OrderedEmitter {
 public:
  static constexpr std::uint64_t kSlots = 32;  // windows held at most
  using Emit = std::function<void(std::vector<MessagePtr>&)>;

  OrderedEmitter(std::size_t readers, Emit emit);
  std::size_t readers() const { return next_window_.size(); }

  // `reader` extracted `messages` (taken, left empty) from window `window`; readers deliver
  // their windows in order, every one of them, empty or not.
  void deliver(std::size_t reader, std::uint64_t window, std::vector<MessagePtr>& messages);
  // `reader` delivers nothing more (end of file, error, stop): no window waits for it.
  void finish(std::size_t reader);

 private:
  struct Slot {
    std::uint64_t window = 0;                     // the window this slot holds
    std::vector<std::vector<MessagePtr>> parts;  // per reader
  };
  // Under the lock: takes the windows every reader has delivered, in order, for emitting.
  std::vector<MessagePtr> collect_ready();
  void emit_in_turn(std::vector<MessagePtr>& messages, std::uint64_t ticket);

  Emit emit_;
  std::mutex mutex_;
  std::condition_variable slot_free_, turn_;
  std::vector<Slot> slots_;
  std::vector<std::uint64_t> next_window_;  // per reader: windows delivered (max when finished)
  std::uint64_t delivered_end_ = 0;         // one past the last window any reader delivered
  std::uint64_t next_collect_ = 0;          // the first window not yet collected
  std::uint64_t next_ticket_ = 0, turn_ticket_ = 0;  // collections leave in the order they were made
};

}  // namespace doppel::plugins::raw
