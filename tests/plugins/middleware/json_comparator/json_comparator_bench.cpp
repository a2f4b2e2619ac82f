// Throughput driver for bench/comparator_throughput.sh: reads pairs of JSON bodies, wraps them
// as original and replayed responses, and runs the `json` comparator over them repeatedly.
// Pairs file: per pair "LEN_A LEN_B\n" followed by the two bodies' bytes.
// Prints "verdicts_per_second N", "pairs N", "differing N" on stdout.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "doppel/testing.hpp"

using namespace doppel;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: json_comparator_bench PAIRS_FILE [SECONDS]\n";
    return 2;
  }
  double seconds = argc > 2 ? std::stod(argv[2]) : 3.0;
  std::ifstream in(argv[1], std::ios::binary);
  std::stringstream all;
  all << in.rdbuf();
  std::string data = all.str();
  std::vector<Exchange> exchanges;
  std::size_t pos = 0;
  auto wrap = [](Kind kind, const std::string& body) {
    return share(Message(kind, "0123456789abcdef01234567", 0,
                         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body));
  };
  while (pos < data.size()) {
    std::size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) break;
    std::size_t la = 0, lb = 0;
    if (std::sscanf(data.c_str() + pos, "%zu %zu", &la, &lb) != 2) break;
    pos = nl + 1;
    exchanges.push_back(Exchange{nullptr, wrap(Kind::response, data.substr(pos, la)),
                                 wrap(Kind::replay, data.substr(pos + la, lb))});
    pos += la + lb;
  }
  if (exchanges.empty()) {
    std::cerr << "no pairs in " << argv[1] << "\n";
    return 1;
  }
  const auto& def = testing::linked_plugin("json");
  auto comparator = def.create_comparator(
      testing::validated_options(def, Value::table({{"ignore", Value::array({"meta.trace_id"})}})));

  std::size_t verdicts = 0, differing = 0;
  auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  // The decoded bodies are cached per message after the first round, as in a pipeline where
  // the compare stage reads each message once: time the diff, not the HTTP decoding.
  while (elapsed < seconds) {
    for (const auto& ex : exchanges) {
      if (!comparator->compare(ex).empty()) ++differing;
      ++verdicts;
    }
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  std::printf("verdicts_per_second %.0f\npairs %zu\ndiffering %zu\n", verdicts / elapsed, exchanges.size(),
              differing * exchanges.size() / verdicts);
  return 0;
}
