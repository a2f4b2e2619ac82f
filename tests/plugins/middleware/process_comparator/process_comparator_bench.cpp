// Throughput driver for bench/process_comparator_throughput.sh: the pairs of bench/lib/json_pairs.py
// judged by the `process` comparator running COMMAND, all judgements submitted as fast as the
// comparator takes them (its own back-pressure bounds what is in flight).
//   process_comparator_bench PAIRS_FILE SECONDS COMMAND [--option NAME=INTEGER]...
// Prints "judgements_per_second N", "judgements N", "differing N", "errors N" on stdout.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "doppel/testing.hpp"
#include "json_pairs.hpp"

using namespace doppel;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: process_comparator_bench PAIRS_FILE SECONDS COMMAND [--option NAME=INTEGER]...\n";
    return 2;
  }
  auto exchanges = testing::read_json_pairs(argv[1]);
  double seconds = std::stod(argv[2]);
  Value options = Value::table({{"command", Value(std::string(argv[3]))}});
  for (int i = 4; i + 1 < argc; i += 2) {
    std::string assignment = argv[i + 1];
    auto eq = assignment.find('=');
    options.as_table().emplace_back(assignment.substr(0, eq),
                                    Value(static_cast<std::int64_t>(std::stoll(assignment.substr(eq + 1)))));
  }
  if (exchanges.empty()) {
    std::cerr << "no pairs in " << argv[1] << "\n";
    return 1;
  }
  // Decode every body once first, as a compare stage finds them decoded by earlier comparators.
  for (const auto& ex : exchanges) {
    ex.original->body();
    ex.replay->body();
  }
  testing::ComparatorHarness harness(testing::linked_plugin("process"), options, "bench");
  harness.start();
  // The program's start-up is not its throughput: one judgement answered before the clock starts.
  harness.judge(exchanges[0], std::chrono::seconds(60));

  std::atomic<std::size_t> answered{0}, differing{0}, errors{0};
  std::size_t submitted = 0;
  auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    for (const auto& ex : exchanges) {
      harness.comparator().compare_async(ex, [&](Judgement j) {
        if (!j.error.empty()) ++errors;
        else if (!j.differences.empty()) ++differing;
        ++answered;
      });
      ++submitted;
    }
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  while (answered < submitted) std::this_thread::sleep_for(std::chrono::microseconds(200));
  elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("judgements_per_second %.0f\njudgements %zu\ndiffering %zu\nerrors %zu\n",
              static_cast<double>(submitted) / elapsed, submitted, differing.load(), errors.load());
  return errors == 0 ? 0 : 1;
}
