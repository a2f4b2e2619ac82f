#pragma once
// The pairs file of bench/lib/json_pairs.py, as exchanges: per pair "LEN_A LEN_B\n" followed by
// the original's and the replay's JSON body, each wrapped in an HTTP 200 response.
#include <charconv>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "doppel/comparator.hpp"

namespace doppel::testing {

inline std::vector<Exchange> read_json_pairs(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream all;
  all << in.rdbuf();
  std::string data = all.str();
  auto wrap = [](Kind kind, const std::string& body) {
    return share(Message(kind, "0123456789abcdef01234567", 0,
                         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body));
  };
  std::vector<Exchange> exchanges;
  std::size_t pos = 0;
  while (pos < data.size()) {
    std::size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) break;
    // from_chars, not sscanf: sscanf measures the whole rest of the buffer on every call.
    std::size_t la = 0, lb = 0;
    const char* end = data.data() + nl;
    auto first = std::from_chars(data.data() + pos, end, la);
    if (first.ec != std::errc() || first.ptr == end) break;
    if (std::from_chars(first.ptr + 1, end, lb).ec != std::errc()) break;
    pos = nl + 1;
    if (pos + la + lb > data.size()) break;
    exchanges.emplace_back(nullptr, wrap(Kind::response, data.substr(pos, la)),
                           wrap(Kind::replay, data.substr(pos + la, lb)));
    pos += la + lb;
  }
  return exchanges;
}

}  // namespace doppel::testing
