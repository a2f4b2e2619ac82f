// Message leases: carried by copies and moves, released with the last message holding them.
// MessagePool: messages come back with their room when the last holder lets go, on any thread,
// and leave nothing of their last use behind.
#include <doctest/doctest.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "doppel/message.hpp"
#include "doppel/message_pool.hpp"

using namespace doppel;

namespace {
// A lease that counts its releases, as a source acknowledging its messages would.
std::shared_ptr<const void> counting_lease(int& released) {
  return std::shared_ptr<const void>(new int(0), [&released](const void* p) {
    ++released;
    delete static_cast<const int*>(p);
  });
}

// Every field set, as an input would.
void fill(Message& m, const std::string& id, const std::string& payload) {
  m.kind = Kind::response;
  m.id = id;
  m.timestamp_ns = 7;
  m.latency_ns = 3;
  m.meta.source = {"10.0.0.1", 80};
  m.meta.destination = {"10.0.0.2", 5555};
  m.meta.connection_id = 9;
  m.meta.stage = "capture";
  m.meta.incomplete = true;
  m.meta.error = "timeout";
  m.payload = payload;
}
}  // namespace

TEST_CASE("a copy carries the lease; the source is released with the last holder") {
  int released = 0;
  Message original(Kind::request, "a", 1, "GET / HTTP/1.1\r\n\r\n");
  original.lease = counting_lease(released);
  auto shared = share(Message(original));  // what an input emits
  CHECK(shared->lease == original.lease);
  original.lease.reset();
  CHECK(released == 0);

  Message edited(*shared);  // a filter that rewrites a message copies it
  edited.payload = "GET /edited HTTP/1.1\r\n\r\n";
  CHECK(edited.lease == shared->lease);
  shared.reset();
  CHECK(released == 0);
  MessagePtr emitted = share(std::move(edited));
  CHECK(emitted->lease.use_count() == 1);  // moved, not copied
  CHECK_FALSE(edited.lease);
  emitted.reset();
  CHECK(released == 1);
}

TEST_CASE("join_leases holds every distinct lease, and none when there are none") {
  int a_released = 0, b_released = 0;
  auto a = counting_lease(a_released);
  auto b = counting_lease(b_released);
  CHECK_FALSE(join_leases({nullptr, nullptr}));
  CHECK(join_leases({a, nullptr, a}) == a);  // one lease: itself, no holder
  auto both = join_leases({a, b, a, nullptr});
  REQUIRE(both);
  CHECK(both != a);
  CHECK(both != b);
  a.reset();
  b.reset();
  CHECK(a_released == 0);
  CHECK(b_released == 0);
  both.reset();
  CHECK(a_released == 1);
  CHECK(b_released == 1);
}

TEST_CASE("leases that own a null pointer (acting by their deleter only) are told apart by owner") {
  int a_released = 0, b_released = 0;
  std::shared_ptr<const void> a(nullptr, [&](const void*) { ++a_released; });
  std::shared_ptr<const void> b(nullptr, [&](const void*) { ++b_released; });
  auto both = join_leases({a, b});
  a.reset();
  b.reset();
  CHECK(a_released == 0);
  CHECK(b_released == 0);
  both.reset();
  CHECK(a_released == 1);
  CHECK(b_released == 1);
}

TEST_CASE("http() and body() are parsed once, whichever thread asks first") {
  for (int round = 0; round < 50; ++round) {
    auto message = doppel::share(doppel::Message(doppel::Kind::request, "id", 0,
                                                 "POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"));
    std::vector<const doppel::HttpView*> views(4);
    std::vector<std::string> bodies(4);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < views.size(); ++t)
      threads.emplace_back([&, t] {
        views[t] = &message->http();
        bodies[t] = message->body().bytes;
      });
    for (auto& t : threads) t.join();
    for (std::size_t t = 0; t < views.size(); ++t) {
      CHECK(views[t] == views[0]);
      CHECK(views[t]->method() == "POST");
      CHECK(bodies[t] == "body");
    }
  }
}


TEST_CASE("a message let go is taken again as new, with the room its strings had") {
  MessagePool pool;
  int released = 0;
  auto first = pool.take();
  const Message* address = first.get();
  fill(*first, std::string(24, 'a'), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  first->lease = counting_lease(released);
  MessagePtr shared = first;  // as emitted: const, shared
  first.reset();
  CHECK(released == 0);
  shared.reset();
  CHECK(released == 1);  // the lease goes with the last holder, not when the message is reused

  auto again = pool.take();
  CHECK(again.get() == address);
  CHECK(pool.created() == 1);
  CHECK(again->kind == Kind::request);
  CHECK(again->id.empty());
  CHECK(again->id.capacity() >= 24);
  CHECK(again->timestamp_ns == 0);
  CHECK(again->latency_ns == 0);
  CHECK(again->meta.source.address.empty());
  CHECK(again->meta.source.port == 0);
  CHECK(again->meta.destination.address.empty());
  CHECK(again->meta.destination.port == 0);
  CHECK(again->meta.connection_id == 0);
  CHECK(again->meta.stage.empty());
  CHECK_FALSE(again->meta.incomplete);
  CHECK(again->meta.error.empty());
  CHECK(again->payload.empty());
  CHECK(again->payload.capacity() >= 40);
  CHECK_FALSE(again->lease);
}

TEST_CASE("parsed views of a message's last use are gone when it is taken again") {
  MessagePool pool;
  auto m = pool.take();
  m->payload = "GET /first?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
  CHECK(m->http().path() == "/first");
  CHECK(m->body().bytes.empty());
  m.reset();
  auto again = pool.take();
  REQUIRE(pool.created() == 1);
  again->payload = "POST /second HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
  CHECK(again->http().method() == "POST");
  CHECK(again->http().path() == "/second");
  CHECK(again->body().bytes == "abc");
}

TEST_CASE("a large payload's room is not kept") {
  MessagePool pool;
  auto m = pool.take();
  m->payload.assign(MessagePool::kKeptPayloadRoom + 1, 'x');
  m.reset();
  auto again = pool.take();
  REQUIRE(pool.created() == 1);
  CHECK(again->payload.capacity() <= MessagePool::kKeptPayloadRoom);
}

TEST_CASE("after a burst, idle messages beyond the bound are freed") {
  MessagePool pool;
  constexpr std::size_t kBurst = MessagePool::kMaxIdle + 100;
  std::vector<std::shared_ptr<Message>> burst;
  for (std::size_t i = 0; i < kBurst; ++i) burst.push_back(pool.take());
  burst.clear();  // a stage downstream let them all go
  for (std::uint64_t i = 0; i < MessagePool::kTrimInterval; ++i) pool.take();  // steady, one at a time
  CHECK(pool.created() == kBurst);  // all reused
  for (std::size_t i = 0; i < kBurst; ++i) burst.push_back(pool.take());
  CHECK(pool.created() == kBurst + 100);  // the 100 beyond the bound were freed
}

TEST_CASE("a message another holder still sees, even through a weak_ptr, is not handed out") {
  MessagePool pool;
  auto m = pool.take();
  std::weak_ptr<Message> watcher = m;
  m.reset();
  CHECK(watcher.expired());
  auto second = pool.take();
  CHECK(pool.created() == 2);  // the first one's control block is still in use
  watcher.reset();
  second.reset();
  pool.take();
  pool.take();
  CHECK(pool.created() == 2);
}

TEST_CASE("messages freed on other threads come back; a steady stream builds nothing new") {
  // A producer takes messages and queues them; a consumer checks and drops them, as a
  // capture and the stage after it do. At most `kInFlight` are out at a time.
  constexpr int kMessages = 50000, kInFlight = 64;
  MessagePool pool;
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<MessagePtr> queue;
  bool done = false;
  int mismatched = 0;
  std::thread consumer([&] {
    for (;;) {
      MessagePtr m;
      {
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] { return !queue.empty() || done; });
        if (queue.empty()) return;
        m = std::move(queue.front());
        queue.pop_front();
      }
      changed.notify_all();
      if (m->payload != "payload of " + m->id) ++mismatched;
      m.reset();  // back to the pool, from this thread
    }
  });
  for (int i = 0; i < kMessages; ++i) {
    auto m = pool.take();
    CHECK(m->id.empty());
    m->id = std::to_string(i);
    m->payload = "payload of " + m->id;
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return queue.size() < kInFlight; });
    queue.push_back(std::move(m));
    changed.notify_all();
  }
  {
    std::lock_guard lock(mutex);
    done = true;
  }
  changed.notify_all();
  consumer.join();
  CHECK(mismatched == 0);
  // Those in the queue, one being checked, one being filled, and some on their way back.
  CHECK(pool.created() <= kInFlight + 16);
}

TEST_CASE("messages outlive their pool and are freed by their last holder") {
  int released = 0;
  std::vector<MessagePtr> kept;
  {
    MessagePool pool;
    for (int i = 0; i < 3; ++i) {
      auto m = pool.take();
      m->payload = "message " + std::to_string(i);
      m->lease = counting_lease(released);
      kept.push_back(std::move(m));
    }
    pool.take();  // taken and let go at once: back in the pool when it closes
  }
  CHECK(kept[2]->payload == "message 2");
  std::thread other([&] { kept.pop_back(); });  // freed on another thread
  other.join();
  CHECK(released == 1);
  kept.clear();  // the last one frees what the pool left behind (ASan tells a leak)
  CHECK(released == 3);
}
