// Message leases: carried by copies and moves, released with the last message holding them.
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "doppel/message.hpp"

using namespace doppel;

namespace {
// A lease that counts its releases, as a source acknowledging its messages would.
std::shared_ptr<const void> counting_lease(int& released) {
  return std::shared_ptr<const void>(new int(0), [&released](const void* p) {
    ++released;
    delete static_cast<const int*>(p);
  });
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
