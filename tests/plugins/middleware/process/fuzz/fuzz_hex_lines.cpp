// libFuzzer: what a middleware program writes back (GoReplay's protocol: one line per message,
// the hex of "TYPE ID TIMESTAMP LATENCY\n" + payload). Every line is decoded as the process
// middleware decodes it; a line it accepts must be exactly the hex of a record parse_record
// accepts, and re-encoding the message must give a line that decodes to the same message. The
// whole input is also hex-encoded as one line, so that the record parser behind the hex sees
// every byte pattern the fuzzer makes.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "doppel/gor.hpp"
#include "doppel/hex.hpp"
#include "hex_lines.hpp"

using namespace doppel;

namespace {

bool same(const Message& a, const Message& b) {
  return a.kind == b.kind && a.id == b.id && a.timestamp_ns == b.timestamp_ns && a.latency_ns == b.latency_ns &&
         a.payload == b.payload;
}

// The bytes a line of hex digits stands for, or nullopt (reference decoder: two digits a byte).
std::optional<std::string> unhex(std::string_view line) {
  if (line.size() % 2 != 0) return std::nullopt;
  std::string bytes;
  for (std::size_t i = 0; i < line.size(); i += 2) {
    int hi = hex_digit_value(line[i]), lo = hex_digit_value(line[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    bytes.push_back(static_cast<char>(hi * 16 + lo));
  }
  return bytes;
}

void check_line(std::string_view line) {
  std::string error;
  auto message = plugins::decode_hex_line(line, error);
  std::string_view digits = line;
  if (!digits.empty() && digits.back() == '\r') digits.remove_suffix(1);
  auto bytes = unhex(digits);
  auto reference = bytes ? gor::parse_record(*bytes) : std::nullopt;
  if (message.has_value() != reference.has_value()) __builtin_trap();
  if (!message) {
    if (error.empty()) __builtin_trap();  // a refused line says why (it is logged)
    return;
  }
  if (!same(*message, *reference)) __builtin_trap();
  std::string again;
  plugins::append_hex_line(again, *message);
  if (again.empty() || again.back() != '\n') __builtin_trap();
  again.pop_back();
  auto round_trip = plugins::decode_hex_line(again, error);
  if (!round_trip || !same(*round_trip, *message)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view stream(reinterpret_cast<const char*>(data), size);
  for (std::size_t begin = 0; begin < stream.size();) {
    std::size_t nl = stream.find('\n', begin);
    if (nl == std::string_view::npos) nl = stream.size();
    check_line(stream.substr(begin, nl - begin));
    begin = nl + 1;
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(size * 2);
  for (unsigned char c : stream) {
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 15]);
  }
  check_line(hex);
  return 0;
}
