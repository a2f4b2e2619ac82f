#include "hex_lines.hpp"

#include "doppel/gor.hpp"
#include "doppel/hex.hpp"

namespace doppel::plugins {
namespace {
constexpr char kDigits[] = "0123456789abcdef";
void append_hex(std::string& out, std::string_view bytes) {
  std::size_t at = out.size();
  out.resize(at + bytes.size() * 2);
  char* p = out.data() + at;
  for (unsigned char c : bytes) {
    *p++ = kDigits[c >> 4];
    *p++ = kDigits[c & 15];
  }
}
}  // namespace

void append_hex_line(std::string& out, const Message& message) {
  out.reserve(out.size() + (message.payload.size() + 64) * 2 + 1);
  append_hex(out, gor::format_header(message));
  append_hex(out, message.payload);
  out += '\n';
}

std::optional<Message> decode_hex_line(std::string_view line, std::string& error) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() % 2 != 0) {
    error = "odd number of hex digits";
    return std::nullopt;
  }
  std::string bytes(line.size() / 2, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    int hi = hex_digit_value(line[2 * i]), lo = hex_digit_value(line[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      error = "not hex";
      return std::nullopt;
    }
    bytes[i] = static_cast<char>(hi << 4 | lo);
  }
  auto message = gor::parse_record(bytes);
  if (!message) {
    error = "no valid \"TYPE ID TIMESTAMP LATENCY\" header";
    return std::nullopt;
  }
  return message;
}

}  // namespace doppel::plugins
