#pragma once
// For outputs that buffer what they write (a .gor file, a JSONL report): the leases of the
// messages written into the buffer are kept until the buffer is flushed, so that a source that
// acknowledges on release (the nats input) acknowledges only what reached the file, and a
// worker killed outright never loses a message it acknowledged. Not thread-safe: use under the
// output's own lock.
#include <cstddef>
#include <memory>
#include <vector>

#include "doppel/message.hpp"

namespace doppel {

class HeldLeases {
 public:
  explicit HeldLeases(std::size_t limit = 1024) : limit_(limit) {}

  // Keeps the lease of `message` (nothing when it has none). True once `limit` leases are held:
  // flush the buffer now, then release(), so a source with a bounded window is not stalled.
  bool hold(const Message& message) {
    if (message.lease.use_count() == 0) return false;  // (a lease may own a null pointer)
    leases_.push_back(message.lease);
    return leases_.size() >= limit_;
  }
  // The buffer was flushed (or closed): the sources may acknowledge.
  void release() { leases_.clear(); }
  std::size_t size() const { return leases_.size(); }

 private:
  std::size_t limit_;
  std::vector<std::shared_ptr<const void>> leases_;
};

}  // namespace doppel
