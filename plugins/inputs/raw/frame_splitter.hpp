#pragma once
// The frames of a capture file for the threads that share its connections. Each window of
// frames is read and decoded once, by whichever thread needs it first, and split by the
// ConnectionSharder: every thread then reassembles and parses only the frames it owns. A
// thread that gets ahead reads the next windows for the others, which evens out threads that
// share a core with something else; none runs more than kSlots windows ahead of the slowest,
// which bounds what is held.
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "capture_file.hpp"
#include "packet_decoder.hpp"
#include "tcp_reassembler.hpp"

namespace doppel::plugins::raw {

struct SplitFrame {
  DecodeStatus status = DecodeStatus::tcp;
  std::uint32_t wirelen = 0;
  std::int64_t timestamp_ns = 0;
  TcpSegment segment;  // when status is tcp; its payload views into the window
};

class FrameSplitter {
 public:
  static constexpr int kWindow = 1024;         // frames at most
  static constexpr std::size_t kMaxCopied = std::size_t{4} << 20;  // bytes of copied frames at most
  static constexpr std::uint64_t kSlots = 32;  // windows held at most
  // Whether the capture takes a frame (its filter); `segment` is filled when `status` is tcp.
  using Select = std::function<bool(const CapturedFrame&, DecodeStatus status, const TcpSegment& segment)>;

  struct Window {
    std::vector<std::vector<SplitFrame>> frames;  // per thread: the frames it owns, in capture order
    std::int64_t last_timestamp_ns = 0;           // of the window's last frame, taken or not
    // Copies of the frames when the reader's own buffer is reused (libpcap); a mapped file's
    // frames are used in place.
    std::vector<std::unique_ptr<std::uint8_t[]>> blocks;
    std::size_t block = 0, used = 0;
  };

  FrameSplitter(CaptureFile::Reader& reader, int link_type, bool frames_stay, std::size_t threads, Select select);
  std::size_t threads() const { return next_.size(); }

  // Window `number` for `thread`, which is done with the windows before it; read first when
  // no thread has yet. Null after the last window, and once stop() was called.
  const Window* take(std::size_t thread, std::uint64_t number);
  // `thread` takes no more windows: none waits for it.
  void leave(std::size_t thread);
  // Every take() from now on answers null.
  void stop();
  // Why reading ended early ("" at the end of the file).
  std::string error() const;

 private:
  void fill(Window& window);
  const std::uint8_t* keep(Window& window, const CapturedFrame& frame);
  bool slot_free(std::uint64_t number) const;

  CaptureFile::Reader& reader_;
  const int link_type_;
  const bool frames_stay_;
  Select select_;
  ConnectionSharder sharder_;  // used by the thread filling a window, one at a time

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Window> slots_;
  std::vector<std::uint64_t> next_;  // per thread: the window it works on (max once it left)
  std::uint64_t filled_ = 0;         // windows read so far
  bool filling_ = false, ended_ = false, stopped_ = false;
};

}  // namespace doppel::plugins::raw
