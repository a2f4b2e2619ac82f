// Throughput driver for bench/comparator_throughput.sh: reads pairs of JSON bodies, wraps them
// as original and replayed responses, and runs the `json` comparator over them repeatedly.
//   json_comparator_bench PAIRS_FILE [SECONDS] [--rounds N] [--dump FILE] [--option NAME=VALUE]...
// Pairs file: per pair "LEN_A LEN_B\n" followed by the two bodies' bytes.
// Prints "verdicts_per_second N" (wall clock), "cpu_verdicts_per_second N" (per second of this
// process's CPU time: steadier on a busy machine), "pairs N", "differing N" on stdout.
// --rounds N runs exactly N rounds over the pairs instead of SECONDS (for instruction counts,
// which then divide evenly per pair); --dump FILE writes every pair's differences, one pair per
// line, so that two builds can be shown to judge the pairs identically. The comparator ignores
// meta.trace_id unless --option sets its options: ignore=a,b unordered=a tolerance=0.5
// max_differences=3 max_value_length=16 (lists comma-separated).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "doppel/json_writer.hpp"
#include "doppel/testing.hpp"
#include "json_pairs.hpp"

using namespace doppel;

namespace {

// One line per pair: its index, then each difference as a JSON array [path, kind, original, replay].
void dump(const Comparator& comparator, const std::vector<Exchange>& exchanges, const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  std::string line;
  for (std::size_t i = 0; i < exchanges.size(); ++i) {
    line = std::to_string(i);
    for (const auto& d : comparator.compare(exchanges[i])) {
      line += " [";
      append_json_string(line, d.path);
      line += ',';
      append_json_string(line, d.kind);
      line += ',';
      append_json_string(line, d.original);
      line += ',';
      append_json_string(line, d.replay);
      line += ']';
    }
    line += '\n';
    out << line;
  }
}

// NAME=VALUE into the comparator's options: lists for ignore/unordered, numbers otherwise.
void set_option(Value& options, std::string_view assignment) {
  auto eq = assignment.find('=');
  std::string name(assignment.substr(0, eq));
  std::string text(eq == std::string_view::npos ? "" : assignment.substr(eq + 1));
  Value value;
  if (name == "ignore" || name == "unordered") {
    Value::Array items;
    for (std::size_t start = 0; !text.empty() && start <= text.size();) {
      std::size_t comma = std::min(text.find(',', start), text.size());
      items.emplace_back(text.substr(start, comma - start));
      start = comma + 1;
    }
    value = Value(std::move(items));
  } else if (name == "tolerance") {
    value = Value(std::stod(text));
  } else {
    value = Value(static_cast<std::int64_t>(std::stoll(text)));
  }
  auto& table = options.as_table();
  for (auto& [key, existing] : table)
    if (key == name) {
      existing = std::move(value);
      return;
    }
  table.emplace_back(name, std::move(value));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> positional;
  std::string dump_path;
  long rounds = 0;
  Value options = Value::table({{"ignore", Value::array({"meta.trace_id"})}});
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--dump" && i + 1 < argc) dump_path = argv[++i];
    else if (arg == "--rounds" && i + 1 < argc) rounds = std::strtol(argv[++i], nullptr, 10);
    else if (arg == "--option" && i + 1 < argc) set_option(options, argv[++i]);
    else positional.push_back(arg);
  }
  if (positional.empty()) {
    std::cerr << "usage: json_comparator_bench PAIRS_FILE [SECONDS] [--rounds N] [--dump FILE]\n";
    return 2;
  }
  double seconds = positional.size() > 1 ? std::stod(std::string(positional[1])) : 3.0;
  std::vector<Exchange> exchanges = testing::read_json_pairs(std::string(positional[0]));
  if (exchanges.empty()) {
    std::cerr << "no pairs in " << positional[0] << "\n";
    return 1;
  }
  const auto& def = testing::linked_plugin("json");
  auto comparator = def.create_comparator(testing::validated_options(def, options));
  if (!dump_path.empty()) dump(*comparator, exchanges, dump_path);

  std::size_t verdicts = 0, differing = 0;
  auto start = std::chrono::steady_clock::now();
  std::clock_t cpu_start = std::clock();
  double elapsed = 0;
  // The decoded bodies are cached per message after the first round, as in a pipeline where
  // the compare stage reads each message once: time the diff, not the HTTP decoding.
  for (long round = 0; rounds > 0 ? round < rounds : elapsed < seconds; ++round) {
    for (const auto& ex : exchanges) {
      if (!comparator->compare(ex).empty()) ++differing;
      ++verdicts;
    }
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  std::printf("verdicts_per_second %.0f\ncpu_verdicts_per_second %.0f\npairs %zu\ndiffering %zu\n", verdicts / elapsed,
              verdicts / cpu, exchanges.size(), differing * exchanges.size() / verdicts);
  return 0;
}
