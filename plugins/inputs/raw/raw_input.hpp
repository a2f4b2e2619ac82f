#pragma once
// Plugin `raw`: libpcap capture (live interface or pcap/pcapng file) feeding a CaptureSession.
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "capture_file.hpp"
#include "capture_filter.hpp"
#include "capture_session.hpp"
#include "frame_splitter.hpp"
#include "ordered_emitter.hpp"
#include "tls_key_source.hpp"
#include "doppel/stage.hpp"

namespace doppel::plugins::raw {

// Frames set aside for a reason finer than their DecodeStatus (TcpSegment::Skip), per capture thread.
struct SkipCounts {
  std::uint64_t unsupported_encapsulation = 0;
  std::uint64_t too_deep = 0;
  void add(TcpSegment::Skip skip) {
    if (skip == TcpSegment::Skip::unsupported_encapsulation) ++unsupported_encapsulation;
    else if (skip == TcpSegment::Skip::too_deep) ++too_deep;
  }
};

struct RawInputConfig {
  std::string interface;  // live capture; empty when reading `file`
  std::string file;
  std::string filter;     // BPF: `bpf`, or generated->expression()
  std::optional<GeneratedFilter> generated;
  int snaplen = 262144;
  std::uint64_t buffer_size = std::uint64_t{64} << 20;
  bool promiscuous = false;
  // Off by default: immediate mode makes libpcap fall back to TPACKET_V2 and wake once per
  // packet; TPACKET_V3 hands over blocks of packets, at most `buffer_timeout` late.
  bool immediate = false;
  int buffer_timeout_ms = 10;
  // Threads extracting messages from a `file`, each owning part of its connections; 0: one per core.
  int threads = 0;
  CaptureConfig capture;
};

class RawInput : public Stage {
 public:
  explicit RawInput(RawInputConfig config) : config_(std::move(config)) {}
  ~RawInput() override;
  RawInput(const RawInput&) = delete;
  RawInput& operator=(const RawInput&) = delete;
  void start(StageContext& context) override;
  void run(std::stop_token stop) override;
  std::optional<KindSet> produces() const override;
  OverflowPolicy overflow_policy() const override;
  bool needs_privileges() const override { return config_.file.empty(); }

  // How many threads extract messages from `file`.
  std::size_t file_threads() const;

 private:
  std::string effective_filter(int link_type) const;
  std::string shown_filter(int link_type) const;  // for the log: the generated filter once, not per encapsulation
  // Opens and activates the live capture with its filter; nullptr (logged, capture_error) when
  // it cannot.
  void* open_live();
  void run_live(std::stop_token stop);
  void run_file(std::stop_token stop);
  // One thread of run_file: reassembles and parses the frames of the connections `shard` owns.
  void extract(std::stop_token stop, FrameSplitter& splitter, OrderedEmitter& emitter, std::size_t shard,
               const std::shared_ptr<ReassemblyBudget>& budget);
  // Publishes the counters of all shards, with `now` for `shard`.
  void publish(std::size_t shard, const CaptureStats& now, const SkipCounts& skips);
  void skip_loopback_duplicates(void* handle);  // pcap_t*, live capture only
  void publish_pcap_stats(void* handle);

  RawInputConfig config_;
  void* live_handle_ = nullptr;  // pcap_t*: opened by start(), taken by run_live()
  std::mutex stats_mutex_;
  std::vector<CaptureStats> shard_stats_;
  CaptureStats published_;
  std::vector<SkipCounts> shard_skips_;
  SkipCounts published_skips_;
  TlsKeyLogStats published_keylog_;
  std::uint64_t kernel_drops_ = 0, interface_drops_ = 0;
};

}  // namespace doppel::plugins::raw
