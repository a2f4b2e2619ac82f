// The pairing invariant under damage: a keep-alive exchange stream (plain, pipelined, with
// chunked answers and 100-continue), cut into segments with real sequence and acknowledgement
// numbers, then segments deleted, duplicated, swapped and a prefix cut off (mid-stream start)
// as the fuzzer's bytes decide. Whatever survives, every response emitted must carry the id of
// the request it answers (its body names the request's number), and no response may carry an
// id that no emitted request has. A wrong pair traps.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "capture_session.hpp"

using namespace doppel;
using namespace doppel::plugins::raw;

namespace {

struct Bytes {
  const std::uint8_t* data;
  std::size_t size;
  std::size_t at = 0;
  std::uint8_t next() { return at < size ? data[at++] : 0; }
};

struct Wire {
  bool from_client;
  std::uint32_t seq, ack;
  std::uint8_t flags;
  std::string payload;
};

IpAddress v4(std::uint8_t last) {
  IpAddress a;
  a.family = 4;
  a.bytes[0] = 10;
  a.bytes[3] = last;
  return a;
}

std::string request_for(int n, int shape) {
  std::string path = "/" + std::to_string(n);
  if (shape == 1) return "POST " + path + " HTTP/1.1\r\nHost: s\r\nContent-Length: 5\r\n\r\nabcde";
  if (shape == 2) return "PUT " + path + " HTTP/1.1\r\nHost: s\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nxyz";
  return "GET " + path + " HTTP/1.1\r\nHost: s\r\n\r\n";
}

std::string response_for(int n, int shape) {
  std::string body = std::to_string(n);
  if (shape == 1) {
    char size[16];
    std::snprintf(size, sizeof size, "%zx", body.size());
    return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n";
  }
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes in{data, size};
  int exchanges = 2 + in.next() % 12;
  bool pipelined = in.next() % 4 == 0;
  std::size_t mss = 8 + in.next() % 64;

  // The conversation as it happened on the wire.
  std::vector<Wire> wire;
  std::uint32_t cseq = 1000 + in.next(), sseq = 90000 + in.next() * 256u;
  auto send = [&](bool client, const std::string& bytes) {
    for (std::size_t i = 0; i < bytes.size(); i += mss) {
      std::string piece = bytes.substr(i, mss);
      wire.push_back({client, client ? cseq : sseq, client ? sseq : cseq, 0x18, piece});
      (client ? cseq : sseq) += static_cast<std::uint32_t>(piece.size());
    }
  };
  wire.push_back({true, cseq++, 0, 0x02, ""});
  wire.push_back({false, sseq++, cseq, 0x12, ""});
  wire.push_back({true, cseq, sseq, 0x10, ""});
  std::vector<int> shapes(static_cast<std::size_t>(exchanges));
  for (auto& s : shapes) s = in.next() % 3;
  if (pipelined) {
    std::string all;
    for (int n = 0; n < exchanges; ++n)
      if (shapes[static_cast<std::size_t>(n)] != 2) all += request_for(n, shapes[static_cast<std::size_t>(n)]);
    send(true, all);
    for (int n = 0; n < exchanges; ++n)
      if (shapes[static_cast<std::size_t>(n)] != 2) send(false, response_for(n, shapes[static_cast<std::size_t>(n)] == 1));
  } else {
    for (int n = 0; n < exchanges; ++n) {
      int shape = shapes[static_cast<std::size_t>(n)];
      std::string request = request_for(n, shape);
      if (shape == 2) {
        std::size_t body = request.size() - 3;
        send(true, request.substr(0, body));
        send(false, "HTTP/1.1 100 Continue\r\n\r\n");
        send(true, request.substr(body));
      } else {
        send(true, request);
      }
      send(false, response_for(n, n % 2));
    }
  }

  // The damage.
  std::size_t cut = in.next() % 4 == 0 ? in.next() % wire.size() : 0;
  std::vector<Wire> seen(wire.begin() + static_cast<std::ptrdiff_t>(cut), wire.end());
  while (in.at < in.size && !seen.empty()) {
    std::uint8_t op = in.next();
    std::size_t k = in.next() % seen.size();
    switch (op % 4) {
      case 0: seen.erase(seen.begin() + static_cast<std::ptrdiff_t>(k)); break;
      case 1: seen.insert(seen.begin() + static_cast<std::ptrdiff_t>(k), seen[k]); break;
      case 2:
        if (k + 1 < seen.size()) std::swap(seen[k], seen[k + 1]);
        break;
      default: break;
    }
  }

  CaptureConfig config;
  config.track_response = true;
  config.server_ports = {80};
  // One input in twelve runs with a memory budget that leaves the connection a few hundred bytes
  // beyond its state: messages are evicted, the queue refused room, and pairs must still be right.
  if (exchanges == 13) config.limits.memory_budget = 4400 + (sseq >> 8) % 32 * 64;
  std::map<std::string, std::string> request_path;  // id -> "/n"
  std::vector<Message> responses;
  {
    CaptureSession session(config, [&](Message&& m) {
      if (m.kind == Kind::request) {
        auto space = m.payload.find(' ');
        request_path[m.id] = m.payload.substr(space + 1, m.payload.find(' ', space + 1) - space - 1);
      } else {
        responses.push_back(std::move(m));
      }
    });
    std::int64_t ts = 1'700'000'000'000'000'000;
    for (const auto& w : seen) {
      TcpSegment s;
      s.source = v4(w.from_client ? 1 : 2);
      s.destination = v4(w.from_client ? 2 : 1);
      s.source_port = w.from_client ? 40000 : 80;
      s.destination_port = w.from_client ? 80 : 40000;
      s.seq = w.seq;
      s.ack = w.ack;
      s.flags = w.flags;
      s.payload = w.payload;
      session.add_segment(s, ts);
      ts += 1'000'000;
    }
    session.finish(ts);
  }
#ifdef PAIRING_DEBUG  // build with -DPAIRING_DEBUG to see a crash input's segments and pairs
  for (const auto& w : seen)
    std::fprintf(stderr, "%s seq=%u ack=%u flags=%x %s\n", w.from_client ? "C" : "S", w.seq, w.ack, w.flags,
                 w.payload.c_str());
  for (const auto& r : responses)
    std::fprintf(stderr, "RESPONSE for %s: %s\n", request_path.count(r.id) ? request_path[r.id].c_str() : "?",
                 r.payload.c_str());
#endif
  for (const auto& r : responses) {
    auto it = request_path.find(r.id);
    if (it == request_path.end()) __builtin_trap();  // an orphan: a response with no request
    auto body_at = r.payload.find("\r\n\r\n");
    if (body_at == std::string::npos) __builtin_trap();
    std::string body = r.payload.substr(body_at + 4);
    if (body.find("\r\n") != std::string::npos) body = body.substr(body.find("\r\n") + 2, body.size());  // chunked
    if (body.find("\r\n") != std::string::npos) body = body.substr(0, body.find("\r\n"));
    if ("/" + body != it->second) __builtin_trap();  // a response paired with another request
  }
  return 0;
}
