#include "frame_splitter.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace doppel::plugins::raw {
namespace {
constexpr std::size_t kBlockSize = std::size_t{1} << 20;  // more than a frame can hold
}

FrameSplitter::FrameSplitter(CaptureFile::Reader& reader, int link_type, bool frames_stay, std::size_t threads,
                             Select select)
    : reader_(reader),
      link_type_(link_type),
      frames_stay_(frames_stay),
      select_(std::move(select)),
      sharder_(threads),
      slots_(kSlots),
      next_(threads, 0) {
  for (auto& slot : slots_) slot.frames.resize(threads);
}

const FrameSplitter::Window* FrameSplitter::take(std::size_t thread, std::uint64_t number) {
  std::unique_lock lock(mutex_);
  if (next_[thread] != number) {
    next_[thread] = number;
    changed_.notify_all();  // the window before may have been the last one holding a slot
  }
  for (;;) {
    if (stopped_) return nullptr;
    // Read ahead: the window after this one is read before this one is worked on, so that
    // the thread that needs it next finds it ready instead of waiting for a reader.
    if (!filling_ && !ended_ && filled_ <= number + 1 && slot_free(filled_)) {
      filling_ = true;
      Window& window = slots_[filled_ % kSlots];
      lock.unlock();
      fill(window);
      lock.lock();
      filling_ = false;
      changed_.notify_all();
      continue;
    }
    if (number < filled_) return &slots_[number % kSlots];
    if (ended_) return nullptr;
    changed_.wait(lock);
  }
}

bool FrameSplitter::slot_free(std::uint64_t number) const {
  // The slot holds window number - kSlots until every thread has moved past it.
  return number < kSlots || *std::min_element(next_.begin(), next_.end()) > number - kSlots;
}

void FrameSplitter::leave(std::size_t thread) {
  std::lock_guard lock(mutex_);
  next_[thread] = std::numeric_limits<std::uint64_t>::max();
  changed_.notify_all();
}

void FrameSplitter::stop() {
  std::lock_guard lock(mutex_);
  stopped_ = true;
  changed_.notify_all();
}

std::string FrameSplitter::error() const {
  std::lock_guard lock(mutex_);
  return reader_.error();
}

const std::uint8_t* FrameSplitter::keep(Window& window, const CapturedFrame& frame) {
  if (window.used + frame.caplen > kBlockSize) {
    ++window.block;
    window.used = 0;
  }
  if (window.block == window.blocks.size()) window.blocks.push_back(std::make_unique<std::uint8_t[]>(kBlockSize));
  std::uint8_t* copy = window.blocks[window.block].get() + window.used;
  std::memcpy(copy, frame.data, frame.caplen);
  window.used += frame.caplen;
  return copy;
}

void FrameSplitter::fill(Window& window) {
  for (auto& frames : window.frames) frames.clear();
  window.block = window.used = 0;
  CapturedFrame frame;
  int read = 0;
  std::size_t copied = 0;
  bool more = true;
  // A window ends after kWindow frames, or once the copies it holds reach kMaxCopied: 32
  // windows of 1024 loopback frames of 64 KiB each would hold 2 GiB.
  for (; read < kWindow && copied < kMaxCopied && (more = reader_.next(frame)); ++read) {
    if (!frames_stay_) {
      frame.data = keep(window, frame);
      copied += frame.caplen;
    }
    window.last_timestamp_ns = frame.timestamp_ns;
    SplitFrame split;
    split.status = decode_packet(link_type_, frame.data, frame.caplen, frame.wirelen, split.segment);
    if (!select_(frame, split.status, split.segment)) continue;
    split.wirelen = frame.wirelen;
    split.timestamp_ns = frame.timestamp_ns;
    // Frames that are not TCP segments are only counted: the first thread does that.
    std::size_t owner = split.status == DecodeStatus::tcp ? sharder_.owner(split.segment, frame.wirelen) : 0;
    window.frames[owner].push_back(split);
  }
  std::lock_guard lock(mutex_);
  if (read > 0) ++filled_;
  if (!more) ended_ = true;  // the end of the file, or an error the reader tells
}

}  // namespace doppel::plugins::raw
