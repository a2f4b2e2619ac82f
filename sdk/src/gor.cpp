#include "doppel/gor.hpp"

#include <charconv>

namespace doppel::gor {

void append_tls_fields(std::string& out, const TlsMeta& tls) {
  // Values are tokens: a server name or protocol id holding a space or a control character
  // (valid in neither) is left out rather than break the line.
  auto field = [&out](std::string_view key, std::string_view value) {
    if (value.empty()) return;
    for (char c : value)
      if (c <= ' ' || c > '~') return;
    out += ' ';
    out += key;
    out += '=';
    out += value;
  };
  field("tls", tls.version.empty() ? std::string_view("unknown") : std::string_view(tls.version));
  field("cipher", tls.cipher);
  field("sni", tls.server_name);
  field("alpn", tls.alpn);
}

void append_header(std::string& out, const Message& m) {
  char number[24];
  out += static_cast<char>('0' + static_cast<int>(m.kind));
  out += ' ';
  out += m.id;
  out += ' ';
  out.append(number, std::to_chars(number, number + sizeof number, m.timestamp_ns).ptr);
  out += ' ';
  out.append(number, std::to_chars(number, number + sizeof number, m.latency_ns).ptr);
  // doppel's own fields follow as key=value tokens; GoReplay and its middleware split the line
  // at spaces and read the first four, so they pass through them.
  if (!m.meta.proto.empty()) {
    out += " proto=";
    out += m.meta.proto;
    if (m.meta.stream_id != 0) {
      out += " stream=";
      out.append(number, std::to_chars(number, number + sizeof number, m.meta.stream_id).ptr);
    }
  }
  if (m.meta.tls) append_tls_fields(out, *m.meta.tls);
  out += '\n';
}

std::string format_header(const Message& m) {
  std::string out;
  out.reserve(m.id.size() + 48 + m.meta.proto.size());
  append_header(out, m);
  return out;
}

std::string format_record(const Message& m) {
  std::string out = format_header(m);
  out += m.payload;
  return out;
}

std::optional<Header> parse_header(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // "TYPE ID TIMESTAMP [LATENCY] [KEY=VALUE ...]": GoReplay before 1.0 wrote three fields;
  // doppel's own fields (format_header) follow the latency.
  std::string_view fields[4];
  std::size_t count = 0;
  std::string_view extensions;
  while (!line.empty()) {
    auto sp = line.find(' ');
    std::string_view field = line.substr(0, sp);
    if (field.empty()) return std::nullopt;
    if (count == 4) {
      extensions = line;
      break;
    }
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
  std::string_view tls_fields[4];  // tls, cipher, sni, alpn
  while (!extensions.empty()) {
    auto sp = extensions.find(' ');
    std::string_view token = extensions.substr(0, sp);
    extensions = sp == std::string_view::npos ? std::string_view() : extensions.substr(sp + 1);
    auto eq = token.find('=');
    if (token.empty() || eq == std::string_view::npos || eq == 0) return std::nullopt;
    if (sp != std::string_view::npos && extensions.empty()) return std::nullopt;  // a trailing space
    std::string_view key = token.substr(0, eq), value = token.substr(eq + 1);
    for (char c : value)
      if (c <= ' ' || c > '~') return std::nullopt;
    if (key == "proto") {
      h.proto.assign(value);
    } else if (key == "stream") {
      std::int64_t stream = 0;
      if (!parse_int(value, stream) || stream <= 0 || stream > 0x7fffffff) return std::nullopt;
      h.stream_id = static_cast<std::uint32_t>(stream);
    } else if (key == "tls" || key == "cipher" || key == "sni" || key == "alpn") {
      tls_fields[key == "tls" ? 0 : key == "cipher" ? 1 : key == "sni" ? 2 : 3] = value;
    }  // other keys: written by a later doppel; ignored, as GoReplay ignores them all
  }
  if (!tls_fields[0].empty()) {
    auto tls = std::make_shared<TlsMeta>();
    tls->version.assign(tls_fields[0]);
    tls->cipher.assign(tls_fields[1]);
    tls->server_name.assign(tls_fields[2]);
    tls->alpn.assign(tls_fields[3]);
    h.tls = std::move(tls);
  }
  return h;
}

std::optional<Message> parse_record(std::string_view record) {
  auto nl = record.find('\n');
  if (nl == std::string_view::npos) return std::nullopt;
  auto header = parse_header(record.substr(0, nl));
  if (!header) return std::nullopt;
  Message m(header->kind, std::move(header->id), header->timestamp_ns, std::string(record.substr(nl + 1)));
  m.latency_ns = header->latency_ns;
  m.meta.proto = std::move(header->proto);
  m.meta.stream_id = header->stream_id;
  m.meta.tls = std::move(header->tls);
  return m;
}

}  // namespace doppel::gor
