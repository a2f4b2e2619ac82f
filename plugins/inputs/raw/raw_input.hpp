#pragma once
// Plugin `raw`: libpcap capture (live interface or pcap/pcapng file) feeding a CaptureSession.
#include <cstdint>
#include <optional>
#include <string>

#include "capture_session.hpp"
#include "doppel/stage.hpp"

namespace doppel::plugins::raw {

struct RawInputConfig {
  std::string interface;  // live capture; empty when reading `file`
  std::string file;
  std::string filter;     // BPF, generated from port/ports/host unless `bpf` was given
  bool filter_generated = true;
  int snaplen = 262144;
  std::uint64_t buffer_size = std::uint64_t{64} << 20;
  bool promiscuous = false;
  // Off by default: immediate mode makes libpcap fall back to TPACKET_V2 and wake once per
  // packet; TPACKET_V3 hands over blocks of packets, at most `buffer_timeout` late.
  bool immediate = false;
  int buffer_timeout_ms = 10;
  CaptureConfig capture;
};

class RawInput : public Stage {
 public:
  explicit RawInput(RawInputConfig config) : config_(std::move(config)) {}
  void run(std::stop_token stop) override;
  std::optional<KindSet> produces() const override;
  OverflowPolicy overflow_policy() const override;

 private:
  void publish(const CaptureStats& now);
  void skip_loopback_duplicates(void* handle);  // pcap_t*, live capture only
  void publish_pcap_stats(void* handle);

  RawInputConfig config_;
  CaptureStats published_;
  std::uint64_t kernel_drops_ = 0, interface_drops_ = 0;
};

// The BPF program for `tcp`, ports and host, e.g. "tcp and (port 80 or port 8080) and host 10.0.0.1".
// `requests_only`: packets to the ports only (dst port), for captures without responses.
std::string generated_filter(const std::vector<std::uint16_t>& ports, const std::string& host, bool requests_only);

}  // namespace doppel::plugins::raw
