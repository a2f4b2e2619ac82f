// libFuzzer, differential: one byte stream framed twice, with the plain-framing path on and
// off (llhttp alone). Both must report exactly the same messages, skips and upgrades; the
// plain path is an optimisation and may never change what is extracted.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "http_stream_parser.hpp"

using namespace doppel::plugins::raw;

namespace {
struct Recorder : HttpMessageListener {
  std::string log;
  std::string_view stream;  // what was fed: every message framed must be these bytes, unchanged
  bool refused = false;     // a request with ambiguous framing was seen: nothing after it is framed
  void on_message_begin(HttpStreamParser&, std::int64_t ts) override { log += "begin " + std::to_string(ts) + "\n"; }
  int on_headers(HttpStreamParser& p, int status, std::uint8_t) override {
    // Deterministic answers covering HEAD (1) and CONNECT-style switches (2).
    return p.side() == HttpStreamParser::Side::response ? status % 3 : 0;
  }
  void on_message(HttpStreamParser&, ParsedMessage&& m) override {
    if (m.incomplete_reason.empty() && !m.too_large) {
      // Never a byte that was not on the wire (issue 14.3: BDELETE framed as DELETE).
      if (refused || m.end_offset > stream.size() || m.begin_offset > m.end_offset ||
          stream.substr(m.begin_offset, m.end_offset - m.begin_offset) != m.wire())
        __builtin_trap();
    }
    if (m.incomplete_reason == "ambiguous_framing") refused = true;
    log += "message " + std::to_string(m.first_byte_ns) + "-" + std::to_string(m.last_byte_ns) + " status " +
           std::to_string(m.status) + " method " + std::to_string(m.method) + " closes " + std::to_string(m.closes) + " incomplete '" +
           std::string(m.incomplete_reason) + "' too_large " + std::to_string(m.too_large) + " [" + std::string(m.wire()) + "]\n";
  }
  void on_unreported_skip(HttpStreamParser&, std::uint64_t n) override { log += "skip " + std::to_string(n) + "\n"; }
  void on_upgrade(HttpStreamParser&) override { log += "upgrade\n"; }
};

std::string frame(const std::uint8_t* data, std::size_t size, bool plain) {
  Recorder recorder;
  auto side = data[0] & 1 ? HttpStreamParser::Side::response : HttpStreamParser::Side::request;
  bool in_sync = data[0] & 2;
  std::size_t piece = 1 + data[1];
  HttpStreamParser parser(side, recorder, in_sync, true, 2048, plain);
  std::string_view bytes(reinterpret_cast<const char*>(data + 2), size - 2);
  recorder.stream = bytes;
  std::int64_t ts = 1;
  for (std::size_t i = 0; i < bytes.size(); i += piece, ++ts) {
    parser.feed(bytes.substr(i, piece), ts);
    if (parser.state() == HttpStreamParser::State::upgraded && (data[0] & 4)) parser.resume_after_refused_upgrade(ts);
  }
  recorder.log += "state " + std::to_string(static_cast<int>(parser.state())) + "\n";
  parser.end(ts, "unfinished");
  recorder.log += "errors " + std::to_string(parser.parse_errors()) + " skipped " +
                  std::to_string(parser.skipped_bytes()) + "\n";
  return recorder.log;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::string plain = frame(data, size, true), llhttp_only = frame(data, size, false);
  if (plain != llhttp_only) {
    std::fprintf(stderr, "plain framing:\n%s\nllhttp only:\n%s\n", plain.c_str(), llhttp_only.c_str());
    __builtin_trap();
  }
  return 0;
}
