// Units of the nats input: `deliver = "since:..."` times, pacing and options without a server;
// acknowledgement by lease (a message is acknowledged once the pipeline released it and all
// that derived from it) against a real nats-server with JetStream on a loopback port.
#include <doctest/doctest.h>

#include <map>
#include <thread>
#include <utility>

#include "nats_input.hpp"
#include "nats_test_server.hpp"
#include "doppel/testing.hpp"

using namespace doppel;
using doppel::plugins::NatsPacer;
using doppel::plugins::NatsPacing;
using doppel::plugins::parse_timestamp;
using doppel::testing::NatsServer;

TEST_CASE("deliver since: UTC times with minutes, seconds, fractions and offsets") {
  CHECK(parse_timestamp("2026-11-25T10:00Z") == std::optional<std::int64_t>(1795600800LL * 1000000000));
  CHECK(parse_timestamp("2026-11-25T10:00:30Z") == std::optional<std::int64_t>(1795600830LL * 1000000000));
  CHECK(parse_timestamp("2026-11-25T10:00:30.25Z") ==
        std::optional<std::int64_t>(1795600830LL * 1000000000 + 250000000));
  CHECK(parse_timestamp("2026-11-25T11:00+01:00") == parse_timestamp("2026-11-25T10:00Z"));
  CHECK_FALSE(parse_timestamp("2026-11-25T10:00"));    // no zone: ambiguous
  CHECK_FALSE(parse_timestamp("2026-13-25T10:00Z"));   // month 13
  CHECK_FALSE(parse_timestamp("yesterday"));
}

TEST_CASE("pacing keeps recorded gaps from the first request, scaled by speed") {
  auto t0 = std::chrono::steady_clock::time_point(std::chrono::seconds(100));
  NatsPacer pacer(NatsPacing{false, 2.0, std::nullopt});
  CHECK(pacer.due(1'000'000'000, t0) == t0);                                       // anchor
  CHECK(pacer.due(3'000'000'000, t0) == t0 + std::chrono::seconds(1));             // 2s recorded, 200%
  CHECK(pacer.due(500'000'000, t0 + std::chrono::seconds(5)) == t0 + std::chrono::seconds(5));  // out of order
  NatsPacer fast(NatsPacing{true, 1.0, std::nullopt});
  CHECK(fast.due(1, t0) == t0);
  CHECK(fast.due(9'000'000'000, t0) == t0);
}

TEST_CASE("options: deliver and connection settings are checked before start") {
  const auto& def = testing::linked_plugin("nats");
  auto build = [&](Value options) {
    auto validated = testing::validated_options(def, options);
    return def.create_stage(validated);
  };
  CHECK_NOTHROW(build(Value::table({{"deliver", "since:2026-11-25T10:00Z"}})));
  CHECK_THROWS_WITH_AS(build(Value::table({{"deliver", "since:noon"}})),
                       doctest::Contains("is not a UTC time"), ConfigError);
  CHECK_THROWS_WITH_AS(build(Value::table({{"deliver", "latest"}})), doctest::Contains("expected \"all\""),
                       ConfigError);
  CHECK_THROWS_WITH_AS(build(Value::table({{"tls_cert", "c.pem"}})), doctest::Contains("go together"), ConfigError);
  CHECK_THROWS_WITH_AS(build(Value::table({{"token", "t"}, {"user", "u"}})), doctest::Contains("choose one"),
                       ConfigError);
  CHECK_THROWS_WITH_AS(build(Value::table({{"ack_wait", "10ms"}})), doctest::Contains("1s or more"), ConfigError);
}

// ---------------------------------------------------------------- against a real server

namespace {

using namespace std::chrono_literals;

// A stage context that lets the test hold and release what the input emitted.
class HoldingContext : public StageContext {
 public:
  const std::string& stage_name() const override { return name_; }
  spdlog::logger& log() override { return *logger_; }
  bool emit(MessagePtr message) override {
    std::lock_guard lock(mutex_);
    emitted_.push_back(std::move(message));
    return true;
  }
  void drop(std::string_view reason, std::uint64_t count) override {
    counter(std::string("dropped.") += reason).add(count);
  }
  void fail(std::string_view reason, std::uint64_t count) override {
    counter(std::string("failed.") += reason).add(count);
  }
  Counter& counter(std::string_view name) override {
    std::lock_guard lock(mutex_);
    return counters_[std::string(name)];
  }
  Gauge& gauge(std::string_view name) override {
    std::lock_guard lock(mutex_);
    return gauges_[std::string(name)];
  }
  bool stopping() const override { return stop_.stop_requested(); }
  const Comparator* comparator(std::string_view) override { return nullptr; }
  void goal_missed(std::string) override {}

  std::size_t emitted_count() {
    std::lock_guard lock(mutex_);
    return emitted_.size();
  }
  // Hands over what was emitted so far: the test decides when it is released.
  std::vector<MessagePtr> take() {
    std::lock_guard lock(mutex_);
    return std::exchange(emitted_, {});
  }
  std::uint64_t value(const std::string& name) { return counter(name).value(); }
  std::int64_t gauge_value(const std::string& name) { return gauge(name).value(); }
  std::stop_source stop_;

 private:
  std::string name_ = "bus";
  std::shared_ptr<spdlog::logger> logger_ =
      std::make_shared<spdlog::logger>("bus", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  std::mutex mutex_;
  std::vector<MessagePtr> emitted_;
  std::map<std::string, Counter> counters_;
  std::map<std::string, Gauge> gauges_;
};

// The nats input under test, running on a thread of its own.
class RunningInput {
 public:
  // paced: requests keep their recorded gaps (speed = "100%") instead of max_speed.
  RunningInput(const NatsServer& server, const std::string& durable, const std::string& ack_wait,
               bool paced = false) {
    const auto& def = testing::linked_plugin("nats");
    Value::Table options = {{"servers", Value::array({server.url()})}, {"stream", "T"}, {"subject", "t.x"},
                            {"durable", durable}, {"ack_wait", ack_wait}, {"max_speed", !paced}};
    stage_ = def.create_stage(testing::validated_options(def, Value(std::move(options))));
    stage_->start(context);
    thread_ = std::thread([this] { stage_->run(context.stop_.get_token()); });
  }
  ~RunningInput() { stop(); }
  // Ends run(), as a runtime stopping its inputs does.
  void stop_running() {
    context.stop_.request_stop();
    if (thread_.joinable()) thread_.join();
  }
  // Ends run() and stops the stage; messages still held keep their leases.
  void stop() {
    if (!stage_) return;
    stop_running();
    stage_->stop();
    stage_.reset();  // the input object is gone; leases must not need it
  }
  HoldingContext context;

 private:
  std::unique_ptr<Stage> stage_;
  std::thread thread_;
};

Message record(Kind kind, const std::string& id, std::int64_t timestamp_ns, const std::string& path) {
  std::string payload = kind == Kind::request ? "GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n"
                                              : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  return Message(kind, id, timestamp_ns, payload);
}

template <class Pred>
bool eventually(Pred done, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

}  // namespace

TEST_CASE("a NATS message is acknowledged once its records and everything derived from them are released") {
  NatsServer server;
  server.add_stream("T", "t.x");
  Message request = record(Kind::request, "aaaa00000000000000000001", 1, "/r/1");
  Message response = record(Kind::response, "aaaa00000000000000000001", 2, "/r/1");
  server.publish("t.x", {&request, &response});

  RunningInput input(server, "lease", "30s");
  auto& ctx = input.context;
  REQUIRE(eventually([&] { return ctx.emitted_count() == 2; }));
  auto held = ctx.take();
  REQUIRE(held[0]->lease);
  CHECK(held[0]->lease == held[1]->lease);  // one NATS message, one lease for both records
  CHECK(ctx.gauge_value("in_pipeline") == 1);
  CHECK(ctx.value("acked") == 0);

  // A replay and a verdict built from them (copies and join_leases) hold it too.
  Message replay(*held[0]);
  replay.kind = Kind::replay;
  Message judged(Kind::verdict, held[0]->id, 3, "{}");
  judged.lease = join_leases({held[0]->lease, held[1]->lease, nullptr});
  CHECK(judged.lease == held[0]->lease);  // the same lease twice: no holder needed
  auto verdict = share(std::move(judged));
  held.clear();
  std::this_thread::sleep_for(300ms);
  CHECK(ctx.value("acked") == 0);
  CHECK(server.consumer("T", "lease")[0] == 1);  // unacknowledged on the server
  replay.lease.reset();
  std::this_thread::sleep_for(200ms);
  CHECK(ctx.value("acked") == 0);
  verdict.reset();  // the last holder
  CHECK(eventually([&] { return ctx.value("acked") == 1; }));
  CHECK(ctx.gauge_value("in_pipeline") == 0);
  CHECK(eventually([&] { return server.consumer("T", "lease")[0] == 0; }));
  CHECK(server.consumer("T", "lease")[1] == 0);
  CHECK(ctx.value("received") == 1);
}

TEST_CASE("a message held longer than ack_wait is reported in progress, not redelivered") {
  NatsServer server;
  server.add_stream("T", "t.x");
  Message request = record(Kind::request, "bbbb00000000000000000001", 1, "/r/1");
  server.publish("t.x", {&request});

  RunningInput input(server, "slow", "1s");
  auto& ctx = input.context;
  REQUIRE(eventually([&] { return ctx.emitted_count() == 1; }));
  auto held = ctx.take();
  std::this_thread::sleep_for(3500ms);  // a long join: three and a half times ack_wait
  CHECK(ctx.value("in_progress") >= 3);
  CHECK(ctx.value("received") == 1);
  CHECK(ctx.value("redelivered") == 0);
  CHECK(ctx.emitted_count() == 0);
  auto seen = server.consumer("T", "slow");
  CHECK(seen[0] == 1);
  CHECK(seen[1] == 0);  // the server never handed it out again
  held.clear();
  CHECK(eventually([&] { return ctx.value("acked") == 1; }));
  CHECK(eventually([&] { return server.consumer("T", "slow")[0] == 0; }));
}

TEST_CASE("a message whose worker stopped reporting it is redelivered to another worker") {
  NatsServer server;
  server.add_stream("T", "t.x");
  Message request = record(Kind::request, "cccc00000000000000000001", 1, "/r/1");
  server.publish("t.x", {&request});

  // What a killed worker leaves behind: a message handed to its pipeline, not released, and
  // nobody reporting it in progress any more (its input is gone).
  std::vector<MessagePtr> stuck;
  {
    RunningInput dying(server, "group", "1s");
    REQUIRE(eventually([&] { return dying.context.emitted_count() == 1; }));
    stuck = dying.context.take();
    dying.stop();
    CHECK(server.consumer("T", "group")[0] == 1);  // still unacknowledged
  }
  RunningInput survivor(server, "group", "1s");
  REQUIRE(eventually([&] { return survivor.context.emitted_count() == 1; }, 5s));
  CHECK(survivor.context.value("redelivered") == 1);
  survivor.context.take().clear();
  CHECK(eventually([&] { return survivor.context.value("acked") == 1; }));
  CHECK(eventually([&] { return server.consumer("T", "group")[0] == 0; }));
  stuck.clear();  // a late acknowledgement of the first delivery changes nothing
  CHECK(server.consumer("T", "group")[0] == 0);
}

TEST_CASE("leases outlive the input: released after stop(), the message is still acknowledged") {
  NatsServer server;
  server.add_stream("T", "t.x");
  Message request = record(Kind::request, "dddd00000000000000000001", 1, "/r/1");
  server.publish("t.x", {&request});

  std::vector<MessagePtr> held;
  {
    RunningInput input(server, "late", "30s");
    REQUIRE(eventually([&] { return input.context.emitted_count() == 1; }));
    held = input.context.take();
    input.stop();  // the runtime stops inputs while downstream stages still hold messages
  }
  CHECK(server.consumer("T", "late")[0] == 1);
  held.clear();  // acknowledged on the input's connection, which closes now
  CHECK(eventually([&] { return server.consumer("T", "late")[0] == 0; }));
  CHECK(server.consumer("T", "late")[1] == 0);
}

TEST_CASE("stopping hands back what was fetched and not handed over; what was handed over is acked") {
  NatsServer server;
  server.add_stream("T", "t.x");
  // Recorded 20s apart, replayed at the recorded pace: the first goes out, the others wait.
  std::vector<Message> requests;
  for (int i = 0; i < 3; ++i)
    requests.push_back(record(Kind::request, "eeee0000000000000000000" + std::to_string(i),
                              1'700'000'000'000'000'000 + i * 20'000'000'000LL, "/r/" + std::to_string(i)));
  for (auto& r : requests) server.publish("t.x", {&r});

  RunningInput input(server, "paced", "30s", /*paced=*/true);
  auto& ctx = input.context;
  REQUIRE(eventually([&] { return ctx.emitted_count() == 1; }));
  REQUIRE(eventually([&] { return ctx.value("received") == 2; }));  // the second one waits for its time
  auto held = ctx.take();
  input.stop_running();
  CHECK(ctx.value("returned") == 2);  // the waiting one and the one not looked at yet
  CHECK(ctx.value("acked") == 0);
  held.clear();
  CHECK(eventually([&] { return ctx.value("acked") == 1; }));
  input.stop();

  // The returned ones go to the next worker at once, not after ack_wait (30s).
  RunningInput next(server, "paced", "30s");
  REQUIRE(eventually([&] { return next.context.emitted_count() == 2; }, 5s));
  CHECK(next.context.value("redelivered") == 2);
  next.context.take().clear();
  CHECK(eventually([&] { return next.context.value("acked") == 2; }));
  CHECK(eventually([&] { return server.consumer("T", "paced")[0] == 0; }));
}
