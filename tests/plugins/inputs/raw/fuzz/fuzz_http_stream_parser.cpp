// libFuzzer: arbitrary bytes as a request stream and a response stream, cut into packets at
// fuzzer-chosen points, with holes; checks every message reported lies within the input.
#include <cstddef>
#include <cstdint>

#include "http_stream_parser.hpp"

using namespace doppel::plugins::raw;

namespace {
struct Listener : HttpMessageListener {
  std::size_t total = 0;
  std::size_t limit = 0;
  void on_message_begin(HttpStreamParser&, std::int64_t) override {}
  int on_headers(HttpStreamParser& p, int status, std::uint8_t) override {
    return p.side() == HttpStreamParser::Side::response ? status % 3 : 0;
  }
  void on_message(HttpStreamParser&, ParsedMessage&& m) override {
    total += m.wire().size();
    if (m.bytes.size() > limit) __builtin_trap();
  }
  void on_unreported_skip(HttpStreamParser&, std::uint64_t) override {}
  void on_upgrade(HttpStreamParser&) override {}
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  Listener listener;
  listener.limit = 1024;
  bool in_sync = data[0] & 1;
  std::size_t piece = 1 + data[1] % 64;
  HttpStreamParser requests(HttpStreamParser::Side::request, listener, in_sync, true, listener.limit);
  HttpStreamParser responses(HttpStreamParser::Side::response, listener, in_sync, true, listener.limit);
  std::string_view bytes(reinterpret_cast<const char*>(data + 3), size - 3);
  std::int64_t ts = 1;
  for (std::size_t i = 0; i < bytes.size(); i += piece, ++ts) {
    auto chunk = bytes.substr(i, piece);
    HttpStreamParser& p = (i / piece) % 2 ? responses : requests;
    if ((data[2] & 0x0f) == (i / piece) % 16) p.hole(chunk.size(), "gap", ts);
    else p.feed(chunk, ts);
    if (p.state() == HttpStreamParser::State::upgraded && (data[2] & 0x10)) p.resume_after_refused_upgrade(ts);
  }
  requests.end(ts, "unfinished");
  responses.end(ts, "unfinished");
  if (listener.total > bytes.size()) __builtin_trap();
  return 0;
}
