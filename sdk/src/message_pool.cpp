#include "doppel/message_pool.hpp"

#include <atomic>
#include <cstddef>
#include <new>

namespace doppel {

// A message and room for the shared_ptr control block that owns it: one allocation, made
// once and reused.
struct MessagePool::Unit {
  static constexpr std::size_t kControlBlockRoom = 64;
  alignas(std::max_align_t) unsigned char control_block[kControlBlockRoom];
  Message message;
  Unit* next = nullptr;
  Returns* returns;
  explicit Unit(Returns* r) : returns(r) {}
};

// Where messages come back, from any thread: a lock-free stack that the pool's thread takes
// whole. Once the pool is gone the stack holds closed_marker(), and a message coming back frees
// itself; the last one frees this.
struct MessagePool::Returns {
  std::atomic<Unit*> head{nullptr};
  std::atomic<std::int64_t> out_after_close{0};
};

namespace {
// What the stack of returns holds once the pool is gone: an address no unit can have.
void* closed_marker() {
  alignas(std::max_align_t) static unsigned char marker;
  return &marker;
}
}  // namespace

std::int64_t MessagePool::free_units(Unit* list) noexcept {
  std::int64_t freed = 0;
  while (list != nullptr) {
    Unit* next = list->next;
    delete list;
    ++freed;
    list = next;
  }
  return freed;
}

// Allocates the control block inside the unit; freeing it hands the unit back (the control
// block goes last, after the message was released and after every weak_ptr is gone).
template <class T>
struct UnitAllocator {
  using value_type = T;
  MessagePool::Unit* unit;
  explicit UnitAllocator(MessagePool::Unit* u) noexcept : unit(u) {}
  template <class U>
  UnitAllocator(const UnitAllocator<U>& other) noexcept : unit(other.unit) {}
  T* allocate(std::size_t n) {
    if (n * sizeof(T) <= sizeof unit->control_block && alignof(T) <= alignof(std::max_align_t))
      return reinterpret_cast<T*>(unit->control_block);
    return static_cast<T*>(::operator new(n * sizeof(T)));  // a library with a larger control block
  }
  void deallocate(T* p, std::size_t) noexcept {
    if (reinterpret_cast<unsigned char*>(p) != unit->control_block) ::operator delete(p);
    MessagePool::give_back(unit);
  }
  template <class U>
  bool operator==(const UnitAllocator<U>& other) const noexcept {
    return unit == other.unit;
  }
};

// The last holder let go: what the message holds on to is released now, on that thread (a
// lease acknowledges its source), not when the message is reused.
struct ReleaseToPool {
  void operator()(Message* message) const noexcept { MessagePool::release_held(*message); }
};

MessagePool::MessagePool() : returns_(new Returns) {}

MessagePool::~MessagePool() {
  std::int64_t home = free_units(free_);
  home += free_units(returns_->head.exchange(static_cast<Unit*>(closed_marker()), std::memory_order_acq_rel));
  // Messages coming back from now on count themselves down; whoever brings the count of
  // those still out to zero frees `returns_` (it may go below zero before this adds them).
  std::int64_t out = alive_ - home;
  if (returns_->out_after_close.fetch_add(out, std::memory_order_acq_rel) + out == 0) delete returns_;
}

std::shared_ptr<Message> MessagePool::take() {
  if (++taken_since_trim_ == kTrimInterval) trim();
  if (free_ == nullptr) free_ = returns_->head.exchange(nullptr, std::memory_order_acquire);
  Unit* unit = free_;
  if (unit != nullptr) {
    free_ = unit->next;
    clear_for_reuse(unit->message);
  } else {
    unit = new Unit(returns_);
    ++created_;
    ++alive_;
  }
  try {
    return std::shared_ptr<Message>(&unit->message, ReleaseToPool{}, UnitAllocator<Message>(unit));
  } catch (...) {  // only when a control block did not fit and operator new failed
    unit->next = free_;
    free_ = unit;
    throw;
  }
}

void MessagePool::trim() noexcept {
  taken_since_trim_ = 0;
  // What came back since the last take joins the idle ones, then the idle ones beyond the
  // bound are freed.
  Unit* returned = returns_->head.exchange(nullptr, std::memory_order_acquire);
  while (returned != nullptr) {
    Unit* next = returned->next;
    returned->next = free_;
    free_ = returned;
    returned = next;
  }
  Unit** link = &free_;
  for (std::size_t kept = 0; *link != nullptr && kept < kMaxIdle; ++kept) link = &(*link)->next;
  Unit* surplus = *link;
  *link = nullptr;
  alive_ -= free_units(surplus);
}

void MessagePool::give_back(Unit* unit) noexcept {
  Returns* returns = unit->returns;
  Unit* head = returns->head.load(std::memory_order_relaxed);
  for (;;) {
    if (static_cast<void*>(head) == closed_marker()) {
      delete unit;
      if (returns->out_after_close.fetch_sub(1, std::memory_order_acq_rel) == 1) delete returns;
      return;
    }
    unit->next = head;
    if (returns->head.compare_exchange_weak(head, unit, std::memory_order_release, std::memory_order_relaxed))
      return;
  }
}

void MessagePool::release_held(Message& message) noexcept {
  message.lease.reset();
  message.parsed_.reset();
  message.http_once_.reset();
  message.body_once_.reset();
  if (message.payload.capacity() > kKeptPayloadRoom) std::string().swap(message.payload);
}

void MessagePool::clear_for_reuse(Message& message) noexcept {
  message.kind = Kind::request;
  message.id.clear();
  message.timestamp_ns = 0;
  message.latency_ns = 0;
  message.meta.source.address.clear();
  message.meta.source.port = 0;
  message.meta.destination.address.clear();
  message.meta.destination.port = 0;
  message.meta.connection_id = 0;
  message.meta.stage.clear();
  message.meta.incomplete = false;
  message.meta.error.clear();
  message.meta.proto.clear();
  message.meta.stream_id = 0;
  message.meta.tls.reset();
  message.payload.clear();
}

}  // namespace doppel
