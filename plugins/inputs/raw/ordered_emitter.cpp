#include "ordered_emitter.hpp"

#include <algorithm>
#include <limits>

namespace doppel::plugins::raw {

OrderedEmitter::OrderedEmitter(std::size_t readers, Emit emit)
    : emit_(std::move(emit)), slots_(kSlots), next_window_(readers, 0) {
  for (std::uint64_t i = 0; i < kSlots; ++i) {
    slots_[i].window = i;
    slots_[i].parts.resize(readers);
  }
}

void OrderedEmitter::deliver(std::size_t reader, std::uint64_t window, std::vector<MessagePtr>& messages) {
  std::vector<MessagePtr> ready;
  std::uint64_t ticket = 0;
  {
    std::unique_lock lock(mutex_);
    Slot& slot = slots_[window % kSlots];
    slot_free_.wait(lock, [&] { return slot.window == window; });
    auto& part = slot.parts[reader];
    if (part.empty()) part.swap(messages);
    else part.insert(part.end(), std::make_move_iterator(messages.begin()), std::make_move_iterator(messages.end()));
    messages.clear();
    next_window_[reader] = window + 1;
    delivered_end_ = std::max(delivered_end_, window + 1);
    ready = collect_ready();
    if (ready.empty()) return;
    ticket = next_ticket_++;
  }
  emit_in_turn(ready, ticket);
}

void OrderedEmitter::finish(std::size_t reader) {
  std::vector<MessagePtr> ready;
  std::uint64_t ticket = 0;
  {
    std::lock_guard lock(mutex_);
    next_window_[reader] = std::numeric_limits<std::uint64_t>::max();
    ready = collect_ready();
    if (ready.empty()) return;
    ticket = next_ticket_++;
  }
  emit_in_turn(ready, ticket);
}

std::vector<MessagePtr> OrderedEmitter::collect_ready() {
  // Every reader delivered it or finished, and one delivered it at least.
  std::uint64_t complete = std::min(*std::min_element(next_window_.begin(), next_window_.end()), delivered_end_);
  std::vector<MessagePtr> out;
  bool freed = false;
  for (; next_collect_ < complete; ++next_collect_) {
    Slot& slot = slots_[next_collect_ % kSlots];
    for (auto& part : slot.parts) {
      if (out.empty()) out.swap(part);
      else out.insert(out.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
      part.clear();
    }
    slot.window += kSlots;
    freed = true;
  }
  if (freed) slot_free_.notify_all();
  return out;
}

void OrderedEmitter::emit_in_turn(std::vector<MessagePtr>& messages, std::uint64_t ticket) {
  {
    std::unique_lock lock(mutex_);
    turn_.wait(lock, [&] { return turn_ticket_ == ticket; });
  }
  struct PassTurn {  // also when emitting throws: later collections must not wait forever
    OrderedEmitter& self;
    ~PassTurn() {
      {
        std::lock_guard lock(self.mutex_);
        ++self.turn_ticket_;
      }
      self.turn_.notify_all();
    }
  } pass{*this};
  emit_(messages);
}

}  // namespace doppel::plugins::raw
