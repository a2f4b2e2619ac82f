// ExchangeOrder on its own: per-id order request -> original response -> replay, whatever the
// arrival order, bounded by hold_max and hold_timeout.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>

#include "doppel/testing.hpp"
#include "exchange_order.hpp"

using namespace doppel;
using doppel::plugins::ExchangeOrder;
using doppel::plugins::ExchangeOrderConfig;
using doppel::testing::make_message;
using namespace std::chrono_literals;

namespace {
using Clock = ExchangeOrder::Clock;
const Clock::time_point t0 = Clock::time_point{} + 1000s;

MessagePtr msg(Kind kind, const std::string& id) { return make_message(kind, "x", id); }

// "1a 3a" style: kind digit + id, one per released message, in release order.
std::string names(const std::vector<MessagePtr>& ready) {
  std::string out;
  for (const auto& m : ready) out += (out.empty() ? "" : " ") + std::to_string(static_cast<int>(m->kind)) + m->id;
  return out;
}

std::string feed(ExchangeOrder& order, std::initializer_list<std::pair<Kind, const char*>> arrivals,
                 Clock::time_point now = t0) {
  std::vector<MessagePtr> ready;
  for (auto& [kind, id] : arrivals) order.accept(msg(kind, id), now, ready);
  return names(ready);
}
}  // namespace

TEST_CASE("a replay that overtakes its original response is held and released right after it") {
  ExchangeOrder order(ExchangeOrderConfig{});
  CHECK(order.active());
  std::vector<MessagePtr> ready;
  order.accept(msg(Kind::request, "a"), t0, ready);
  order.accept(msg(Kind::replay, "a"), t0, ready);
  CHECK(names(ready) == "1a");
  CHECK(order.held() == 1);
  order.accept(msg(Kind::response, "a"), t0 + 40ms, ready);
  CHECK(names(ready) == "1a 2a 3a");
  CHECK(order.held() == 0);
  CHECK(order.counts().held == 1);
  CHECK(order.counts().expired == 0);
  CHECK_FALSE(order.next_deadline());
}

TEST_CASE("a response or replay before its request waits for the request; the chain follows it") {
  ExchangeOrder order(ExchangeOrderConfig{});
  CHECK(feed(order, {{Kind::replay, "a"}, {Kind::response, "a"}, {Kind::replay, "a"}}) == "");
  CHECK(order.held() == 3);
  CHECK(feed(order, {{Kind::request, "a"}}) == "1a 2a 3a 3a");
  // Later messages of that id go straight on.
  CHECK(feed(order, {{Kind::replay, "a"}}) == "3a");
  CHECK(order.held() == 0);
}

TEST_CASE("holding one id blocks no other") {
  ExchangeOrder order(ExchangeOrderConfig{});
  CHECK(feed(order, {{Kind::request, "a"}, {Kind::replay, "a"}, {Kind::request, "b"}, {Kind::response, "b"},
                     {Kind::replay, "b"}, {Kind::request, "c"}}) == "1a 1b 2b 3b 1c");
  CHECK(order.held() == 1);
  CHECK(feed(order, {{Kind::response, "a"}}) == "2a 3a");
}

TEST_CASE("shuffled arrivals: every id comes out request, response, replays; nothing lost or duplicated") {
  for (unsigned seed : {1u, 2u, 3u, 42u, 2026u}) {
    CAPTURE(seed);
    ExchangeOrder order(ExchangeOrderConfig{});
    std::vector<MessagePtr> arrivals;
    const int ids = 300;
    for (int i = 0; i < ids; ++i) {
      std::string id = "id" + std::to_string(i);
      arrivals.push_back(msg(Kind::request, id));
      arrivals.push_back(msg(Kind::response, id));
      arrivals.push_back(msg(Kind::replay, id));
      if (i % 3 == 0) arrivals.push_back(msg(Kind::replay, id));  // a second replay target
    }
    std::mt19937 rng(seed);
    std::shuffle(arrivals.begin(), arrivals.end(), rng);
    std::vector<MessagePtr> ready;
    auto now = t0;
    for (auto& m : arrivals) order.accept(m, now += 1ms, ready);  // 1.4 s in all: nothing expires
    REQUIRE(ready.size() == arrivals.size());
    std::map<std::string, std::string> seen;
    for (auto& m : ready) seen[m->id] += std::to_string(static_cast<int>(m->kind));
    REQUIRE(seen.size() == static_cast<std::size_t>(ids));
    for (int i = 0; i < ids; ++i) CHECK(seen["id" + std::to_string(i)] == (i % 3 == 0 ? "1233" : "123"));
    CHECK(order.held() == 0);
    CHECK(order.counts().expired == 0);
    CHECK(order.counts().overflow == 0);
  }
}

TEST_CASE("a held message goes on after hold_timeout, counted; its id's later messages are not held again") {
  ExchangeOrder order(ExchangeOrderConfig{KindSet::http(), 100, 5s});
  CHECK(feed(order, {{Kind::request, "a"}, {Kind::replay, "a"}}) == "1a");
  REQUIRE(order.next_deadline());
  CHECK(*order.next_deadline() == t0 + 5s);
  std::vector<MessagePtr> ready;
  order.expire(t0 + 4999ms, ready);
  CHECK(ready.empty());
  order.expire(t0 + 5s, ready);
  CHECK(names(ready) == "3a");  // delivered, not dropped
  CHECK(order.counts().expired == 1);
  CHECK(order.held() == 0);
  CHECK_FALSE(order.next_deadline());
  // The late original response and a second replay now go straight on.
  CHECK(feed(order, {{Kind::response, "a"}, {Kind::replay, "a"}}, t0 + 6s) == "2a 3a");
}

TEST_CASE("expiry keeps an id's order: what it held before goes first") {
  ExchangeOrder order(ExchangeOrderConfig{KindSet::http(), 100, 1s});
  std::vector<MessagePtr> ready;
  order.accept(msg(Kind::replay, "a"), t0, ready);           // waits for request and response
  order.accept(msg(Kind::response, "a"), t0 + 500ms, ready);  // waits for the request
  order.expire(t0 + 1s, ready);  // the replay's time is up: the response goes with it, first
  CHECK(names(ready) == "2a 3a");
  CHECK(order.counts().expired == 2);
  CHECK(feed(order, {{Kind::request, "a"}}, t0 + 2s) == "1a");
}

TEST_CASE("hold_max bounds what is held: the oldest goes on early, counted") {
  ExchangeOrder order(ExchangeOrderConfig{KindSet::http(), 3, 5s});
  std::vector<MessagePtr> ready;
  for (const char* id : {"a", "b", "c", "d", "e"}) {
    order.accept(msg(Kind::request, id), t0, ready);
    order.accept(msg(Kind::replay, id), t0, ready);
  }
  CHECK(order.held() == 3);
  CHECK(order.counts().overflow == 2);
  CHECK(names(ready) == "1a 1b 1c 1d 3a 1e 3b");
  ready.clear();
  order.accept(msg(Kind::response, "d"), t0, ready);
  CHECK(names(ready) == "2d 3d");
}

TEST_CASE("ids are remembered for a bounded time and number") {
  ExchangeOrderConfig config{KindSet::http(), 4, 1s};
  ExchangeOrder order(config);
  CHECK(order.remember_max() == 64);
  CHECK(order.remember_for() == 12s);
  std::vector<MessagePtr> ready;
  for (int i = 0; i < 1000; ++i) order.accept(msg(Kind::request, "r" + std::to_string(i)), t0, ready);
  CHECK(ready.size() == 1000);
  CHECK(order.remembered_ids() <= 64);
  CHECK(order.counts().forgotten == 1000 - 64);
  order.expire(t0 + 12s, ready);
  CHECK(order.remembered_ids() == 0);
}

TEST_CASE("release_all (draining) hands on everything held, each id in order") {
  ExchangeOrder order(ExchangeOrderConfig{});
  CHECK(feed(order, {{Kind::replay, "a"}, {Kind::request, "b"}, {Kind::replay, "b"}, {Kind::response, "a"}}) == "1b");
  std::vector<MessagePtr> ready;
  order.release_all(ready);
  CHECK(names(ready) == "2a 3a 3b");
  CHECK(order.counts().flushed == 3);
  CHECK(order.held() == 0);
  CHECK_FALSE(order.next_deadline());
}

TEST_CASE("without original responses nothing is held or remembered") {
  ExchangeOrder order(ExchangeOrderConfig{KindSet{Kind::request, Kind::replay}, 100, 5s});
  CHECK_FALSE(order.active());
  CHECK(feed(order, {{Kind::replay, "a"}, {Kind::request, "a"}, {Kind::replay, "b"}}) == "3a 1a 3b");
  CHECK(order.remembered_ids() == 0);
}

TEST_CASE("when requests cannot arrive, a replay waits only for its original response") {
  ExchangeOrder order(ExchangeOrderConfig{KindSet{Kind::response, Kind::replay}, 100, 5s});
  CHECK(feed(order, {{Kind::replay, "a"}, {Kind::response, "a"}, {Kind::response, "b"}}) == "2a 3a 2b");
}

TEST_CASE("messages without an id are never held") {
  ExchangeOrder order(ExchangeOrderConfig{});
  std::vector<MessagePtr> ready;
  order.accept(share(Message(Kind::replay, "", 0, "x")), t0, ready);
  CHECK(ready.size() == 1);
}
