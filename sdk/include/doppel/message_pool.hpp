#pragma once
// Messages recycled for an input that builds many of them on one thread while other stages'
// threads free them. A message goes back to its pool, with its strings' room, when its last
// holder lets go. So in a steady state building one allocates nothing, and the allocator does
// not move every freed block back to the thread that allocated it. (The raw input reading a
// capture file: 15% fewer instructions per message, wall time x0.95.)
#include <cstdint>
#include <memory>

#include "doppel/message.hpp"

namespace doppel {

class MessagePool {
 public:
  MessagePool();
  // Messages still held elsewhere stay valid; each is freed when its last holder lets go.
  ~MessagePool();
  MessagePool(const MessagePool&) = delete;
  MessagePool& operator=(const MessagePool&) = delete;

  // A message equal to Message{} but whose strings may already have room. Call take() from
  // one thread at a time; the messages may be released on any thread.
  std::shared_ptr<Message> take();

  // How many messages this pool has built so far (the rest of what take() gave was reused).
  std::uint64_t created() const { return created_; }

  // A payload's room is kept up to this size; a larger one is freed with its message.
  static constexpr std::size_t kKeptPayloadRoom = std::size_t{16} << 10;
  // After a burst (a stage downstream held many messages for a while), at most this many
  // idle messages are kept; the rest are freed, checked every kTrimInterval takes.
  static constexpr std::size_t kMaxIdle = 8192;
  static constexpr std::uint64_t kTrimInterval = 65536;

 private:
  struct Unit;
  struct Returns;
  template <class T>
  friend struct UnitAllocator;
  friend struct ReleaseToPool;

  static void give_back(Unit* unit) noexcept;
  static void clear_for_reuse(Message& message) noexcept;
  static void release_held(Message& message) noexcept;
  static std::int64_t free_units(Unit* list) noexcept;  // deletes a list of units, returns how many
  void trim() noexcept;

  Returns* returns_;      // outlives the pool while any of its messages is held
  Unit* free_ = nullptr;  // taken back, ready to hand out (this thread's)
  std::uint64_t created_ = 0;
  std::int64_t alive_ = 0;  // built and not freed by trim(): held elsewhere, or idle here
  std::uint64_t taken_since_trim_ = 0;
};

}  // namespace doppel
