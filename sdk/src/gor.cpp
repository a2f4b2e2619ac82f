#include "doppel/gor.hpp"

#include <charconv>

namespace doppel::gor {

std::string format_header(const Message& m) {
  std::string out;
  out.reserve(m.id.size() + 48);
  out += static_cast<char>('0' + static_cast<int>(m.kind));
  out += ' ';
  out += m.id;
  out += ' ';
  out += std::to_string(m.timestamp_ns);
  out += ' ';
  out += std::to_string(m.latency_ns);
  out += '\n';
  return out;
}

std::string format_record(const Message& m) {
  std::string out = format_header(m);
  out += m.payload;
  return out;
}

std::optional<Header> parse_header(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // "TYPE ID TIMESTAMP [LATENCY]": GoReplay before 1.0 wrote three fields.
  std::string_view fields[4];
  std::size_t count = 0;
  while (!line.empty() && count < 5) {
    auto sp = line.find(' ');
    std::string_view field = line.substr(0, sp);
    if (field.empty()) return std::nullopt;
    if (count == 4) return std::nullopt;
    fields[count++] = field;
    if (sp == std::string_view::npos) break;
    line.remove_prefix(sp + 1);
    if (line.empty()) return std::nullopt;
  }
  if (count < 3) return std::nullopt;
  Header h;
  if (fields[0].size() != 1 || fields[0][0] < '1' || fields[0][0] > '4') return std::nullopt;
  h.kind = static_cast<Kind>(fields[0][0] - '0');
  for (char c : fields[1])
    if (c <= ' ' || c > '~') return std::nullopt;
  h.id.assign(fields[1]);
  auto parse_int = [](std::string_view s, std::int64_t& out) {
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && ptr == s.data() + s.size();
  };
  if (!parse_int(fields[2], h.timestamp_ns)) return std::nullopt;
  if (count == 4 && !parse_int(fields[3], h.latency_ns)) return std::nullopt;
  return h;
}

std::optional<Message> parse_record(std::string_view record) {
  auto nl = record.find('\n');
  if (nl == std::string_view::npos) return std::nullopt;
  auto header = parse_header(record.substr(0, nl));
  if (!header) return std::nullopt;
  Message m(header->kind, std::move(header->id), header->timestamp_ns, std::string(record.substr(nl + 1)));
  m.latency_ns = header->latency_ns;
  return m;
}

}  // namespace doppel::gor
