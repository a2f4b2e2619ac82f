// libFuzzer: a script of TCP segments (both directions, any flags, sequence numbers near each
// other and across the wrap) fed to the whole capture session with tight bounds.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "capture_session.hpp"

using namespace doppel::plugins::raw;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  CaptureConfig config;
  config.track_response = true;
  config.allow_incomplete = data != nullptr && size > 0 && (data[0] & 1);
  config.max_message_size = 4096;
  config.limits.max_connections = 4;
  config.limits.max_connection_buffer = 2048;
  config.limits.max_total_buffer = 4096;
  config.limits.gap_timeout_ns = 50;
  config.limits.idle_timeout_ns = 1000;
  // Half the inputs run under a memory budget that a few connections fill: evictions, refused
  // segments and refused connections on every path.
  if (data != nullptr && size > 0 && (data[0] & 2)) config.limits.memory_budget = 24 << 10;
  std::size_t emitted = 0;
  CaptureSession session(config, [&emitted](doppel::Message&& m) {
    if (m.id.size() != 24) __builtin_trap();
    ++emitted;
  });
  std::int64_t ts = 1;
  std::size_t i = 0;
  // Record: flags(1) conn+dir(1) seq delta(2) missing(1) length(1) payload(length)
  while (i + 6 <= size) {
    TcpSegment s;
    std::uint8_t who = data[i + 1];
    bool from_client = who & 1;
    std::uint8_t conn = (who >> 1) & 7;
    s.source.family = s.destination.family = 4;
    s.source.bytes[3] = from_client ? 1 : 2;
    s.destination.bytes[3] = from_client ? 2 : 1;
    s.source_port = from_client ? static_cast<std::uint16_t>(40000 + conn) : 80;
    s.destination_port = from_client ? 80 : static_cast<std::uint16_t>(40000 + conn);
    s.flags = data[i];
    std::uint16_t delta;
    std::memcpy(&delta, data + i + 2, 2);
    s.seq = (from_client ? 0xfffff000u : 0x1000u) + delta;
    s.missing = data[i + 4] & 0x1f;
    std::size_t length = data[i + 5];
    i += 6;
    if (length > size - i) length = size - i;
    s.payload = std::string_view(reinterpret_cast<const char*>(data + i), length);
    i += length;
    session.add_segment(s, ts);
    ts += who >> 4;
  }
  session.advance(ts + 100);
  session.finish(ts + 200);
  if (session.stats().reassembly.memory_bytes != 0) __builtin_trap();  // every charge given back
  return 0;
}
