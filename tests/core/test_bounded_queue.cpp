#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "bounded_queue.hpp"

using namespace doppel;
using namespace doppel::core;
using namespace std::chrono_literals;

namespace {
const std::atomic<bool> kNoAbort{false};

MessagePtr numbered(const std::string& producer, int n) {
  return share(Message(Kind::request, producer + ":" + std::to_string(n), n, ""));
}

std::vector<MessagePtr> numbered_batch(const std::string& producer, int from, int count) {
  std::vector<MessagePtr> batch;
  for (int i = 0; i < count; ++i) batch.push_back(numbered(producer, from + i));
  return batch;
}

std::vector<std::string> ids(const std::vector<MessagePtr>& messages) {
  std::vector<std::string> out;
  for (const auto& m : messages) out.push_back(m ? m->id : "(marker)");
  return out;
}
}  // namespace

TEST_CASE("messages leave the queue in the order they came, singles and batches alike") {
  BoundedQueue queue(16);
  CHECK(queue.push(numbered("a", 0), false, kNoAbort) == BoundedQueue::Push::ok);
  auto batch = numbered_batch("a", 1, 3);
  auto [pushed, result] = queue.push_batch(batch, false, kNoAbort);
  CHECK(pushed == 3);
  CHECK(result == BoundedQueue::Push::ok);
  CHECK(queue.push(numbered("a", 4), false, kNoAbort) == BoundedQueue::Push::ok);
  std::vector<MessagePtr> out;
  REQUIRE(queue.pop_batch(out, 3));
  CHECK(ids(out) == std::vector<std::string>{"a:0", "a:1", "a:2"});
  REQUIRE(queue.pop_batch(out, 3));
  CHECK(ids(out) == std::vector<std::string>{"a:0", "a:1", "a:2", "a:3", "a:4"});
  CHECK(queue.size() == 0);
}

TEST_CASE("a full queue refuses without waiting, and takes only what fits of a batch") {
  BoundedQueue queue(4);
  for (int i = 0; i < 3; ++i) CHECK(queue.push(numbered("a", i), false, kNoAbort) == BoundedQueue::Push::ok);
  auto batch = numbered_batch("b", 0, 3);
  auto [pushed, result] = queue.push_batch(batch, false, kNoAbort);
  CHECK(pushed == 1);
  CHECK(result == BoundedQueue::Push::full);
  CHECK(queue.push(numbered("c", 0), false, kNoAbort) == BoundedQueue::Push::full);
  CHECK(queue.size() == 4);
  // Control items (flush markers) are never refused.
  queue.push_control(nullptr);
  CHECK(queue.size() == 5);
}

TEST_CASE("a producer waiting for room resumes once the consumer took a quarter of the queue") {
  BoundedQueue queue(8);
  for (int i = 0; i < 8; ++i) REQUIRE(queue.push(numbered("a", i), false, kNoAbort) == BoundedQueue::Push::ok);
  auto producer = std::async(std::launch::async, [&] {
    auto batch = numbered_batch("b", 0, 2);
    return queue.push_batch(batch, true, kNoAbort);
  });
  struct CloseOnExit {  // a failed check must not leave the producer waiting forever
    BoundedQueue& queue;
    ~CloseOnExit() { queue.close(false); }
  } close_on_exit{queue};
  CHECK(producer.wait_for(50ms) == std::future_status::timeout);  // no room yet
  std::vector<MessagePtr> out;
  REQUIRE(queue.pop_batch(out, 2));  // a quarter of 8
  REQUIRE(producer.wait_for(5s) == std::future_status::ready);
  auto [pushed, result] = producer.get();
  CHECK(pushed == 2);
  CHECK(result == BoundedQueue::Push::ok);
  out.clear();
  while (queue.size() > 0) REQUIRE(queue.pop_batch(out, 64));
  CHECK(ids(out) == std::vector<std::string>{"a:2", "a:3", "a:4", "a:5", "a:6", "a:7", "b:0", "b:1"});
}

TEST_CASE("a consumer that went to sleep after a producer's batch wakes for the next message at once") {
  // After a batch of 64 or more the consumer sleeps without lingering: the next push, a batch
  // or a lone message, must still wake it.
  BoundedQueue queue(1024);
  std::atomic<int> taken{0};
  std::thread consumer([&] {
    std::vector<MessagePtr> out;
    while (queue.pop_batch(out, 64)) {
      taken += static_cast<int>(out.size());
      out.clear();
    }
  });
  auto wait_for_taken = [&](int n) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (taken.load() < n && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    return taken.load();
  };
  auto batch = numbered_batch("a", 0, 200);
  queue.push_batch(batch, true, kNoAbort);
  CHECK(wait_for_taken(200) == 200);
  std::this_thread::sleep_for(20ms);  // the consumer is asleep by now
  auto started = std::chrono::steady_clock::now();
  queue.push(numbered("b", 0), true, kNoAbort);
  CHECK(wait_for_taken(201) == 201);
  CHECK(std::chrono::steady_clock::now() - started < 1s);
  batch = numbered_batch("c", 0, 100);
  queue.push_batch(batch, true, kNoAbort);
  CHECK(wait_for_taken(301) == 301);
  queue.close(false);
  consumer.join();
}

TEST_CASE("producers of batches and of single messages lose nothing and keep their order") {
  BoundedQueue queue(256);
  constexpr int kPerProducer = 20000;
  const std::vector<std::string> names = {"singles", "small", "large"};
  std::map<std::string, int> next;
  bool in_order = true;
  std::thread consumer([&] {
    std::vector<MessagePtr> out;
    while (queue.pop_batch(out, 64)) {
      for (const auto& m : out) {
        auto colon = m->id.find(':');
        std::string producer = m->id.substr(0, colon);
        int n = std::stoi(m->id.substr(colon + 1));
        if (n != next[producer]) in_order = false;
        next[producer] = n + 1;
      }
      out.clear();
    }
  });
  std::vector<std::thread> producers;
  for (std::size_t p = 0; p < names.size(); ++p)
    producers.emplace_back([&, p] {
      const int step = p == 0 ? 1 : p == 1 ? 5 : 200;
      for (int n = 0; n < kPerProducer; n += step) {
        if (step == 1) {
          queue.push(numbered(names[p], n), true, kNoAbort);
        } else {
          auto batch = numbered_batch(names[p], n, std::min(step, kPerProducer - n));
          queue.push_batch(batch, true, kNoAbort);
        }
      }
    });
  for (auto& t : producers) t.join();
  queue.close(false);  // what is queued is still taken
  consumer.join();
  CHECK(in_order);
  for (const auto& name : names) CHECK(next[name] == kPerProducer);
}

TEST_CASE("a closed queue refuses pushes, reports what was left, and ends its consumer") {
  BoundedQueue queue(8);
  for (int i = 0; i < 3; ++i) queue.push(numbered("a", i), false, kNoAbort);
  queue.push_control(nullptr);  // markers are not counted as messages left
  CHECK(queue.close(true) == 3);
  CHECK(queue.size() == 0);
  CHECK(queue.push(numbered("a", 3), true, kNoAbort) == BoundedQueue::Push::closed);
  auto batch = numbered_batch("b", 0, 2);
  auto [pushed, result] = queue.push_batch(batch, true, kNoAbort);
  CHECK(pushed == 0);
  CHECK(result == BoundedQueue::Push::closed);
  std::vector<MessagePtr> out;
  CHECK_FALSE(queue.pop_batch(out, 64));
}
