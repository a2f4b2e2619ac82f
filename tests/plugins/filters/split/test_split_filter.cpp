#include <doctest/doctest.h>

#include <set>

#include "doppel/testing.hpp"

using namespace doppel;

TEST_CASE("three split stages share the requests with no overlap and nothing lost") {
  const auto& def = testing::linked_plugin("split");
  std::vector<std::unique_ptr<testing::StageHarness>> branches;
  for (int i = 0; i < 3; ++i)
    branches.push_back(std::make_unique<testing::StageHarness>(def, Value::table({{"ways", 3}, {"index", i}})));
  std::set<std::string> seen;
  for (int n = 0; n < 3000; ++n) {
    auto m = testing::make_message(Kind::request, "GET /" + std::to_string(n) + " HTTP/1.1\r\n\r\n");
    for (auto& b : branches) b->process(m);
  }
  std::size_t total = 0;
  for (auto& b : branches) {
    auto out = b->emitted();
    CHECK(out.size() > 800);  // roughly a third each
    total += out.size();
    for (auto& m : out) CHECK(seen.insert(m->id).second);
    CHECK(b->dropped("other_branch") == 3000 - out.size());
  }
  CHECK(total == 3000);
}

TEST_CASE("index outside 0..ways-1 is a configuration error") {
  CHECK_THROWS_WITH_AS(testing::StageHarness(testing::linked_plugin("split"), Value::table({{"ways", 2}, {"index", 2}})),
                       "index must be between 0 and ways - 1 (1)", ConfigError);
}
