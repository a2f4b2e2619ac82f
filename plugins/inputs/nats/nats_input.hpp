#pragma once
// The `nats` input: a durable JetStream pull consumer shared by a group of workers. Each NATS
// message (one .gor record, or a request with its original response) goes to one worker and
// is acknowledged once the pipeline released every record of it and everything derived from
// them (Message::lease), so a worker killed outright leaves nothing acknowledged unfinished.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "doppel/nats_connection.hpp"
#include "doppel/stage.hpp"

namespace doppel::plugins {

enum class DeliverFrom { all, new_only, since };

struct NatsPacing {
  bool max_speed = false;
  double speed_factor = 1.0;          // "200%" -> 2.0
  std::optional<double> fixed_rate;   // "100/s": evenly spaced, timestamps ignored
};

struct NatsInputConfig {
  nats::NatsConnectionConfig connection;
  std::string subject = "doppel.capture";
  std::string stream = "DOPPEL";
  std::string durable = "replayers";
  DeliverFrom deliver = DeliverFrom::all;
  std::int64_t since_ns = 0;
  std::chrono::nanoseconds ack_wait = std::chrono::seconds(30);
  std::int64_t max_ack_pending = 1000;
  std::int64_t max_deliver = -1;  // -1: no limit
  int batch = 64;
  NatsPacing pacing;
};

// "2026-11-25T10:00Z", "2026-11-25T10:00:30.5+01:00" -> ns since the epoch; nullopt when malformed.
std::optional<std::int64_t> parse_timestamp(std::string_view text);

// When to emit requests so that their recorded spacing is kept (scaled by the speed). Anchored
// at the first request a worker sees, so several workers sharing a stream each keep the
// original pace of the share they receive.
class NatsPacer {
 public:
  explicit NatsPacer(NatsPacing pacing) : pacing_(pacing) {}
  // The moment a request recorded at `timestamp_ns` is due (now or earlier: emit at once).
  std::chrono::steady_clock::time_point due(std::int64_t timestamp_ns, std::chrono::steady_clock::time_point now);

 private:
  NatsPacing pacing_;
  std::optional<std::int64_t> anchor_ns_;
  std::chrono::steady_clock::time_point anchor_at_{}, last_due_{};
};

// The connection, the subscription and every fetched message not settled yet; shared by the
// input and the leases it hands out (defined in nats_input.cpp).
class NatsConsumerSession;

class NatsInput : public Stage {
 public:
  explicit NatsInput(NatsInputConfig config);
  ~NatsInput() override;

  void start(StageContext& context) override;
  void run(std::stop_token stop) override;
  void stop() override;
  OverflowPolicy overflow_policy() const override { return OverflowPolicy::block; }

 private:
  // stopped: not handed over; partly_handed_over: the pipeline refused a record (shutting down).
  enum class Outcome { accepted, rejected, stopped, partly_handed_over };
  // Creates the durable consumer when missing and binds to it; "" or the problem.
  std::string subscribe(NatsConsumerSession& session);
  Outcome deliver(NatsConsumerSession& session, natsMsg* msg, std::stop_token& stop);
  // Sleeps until `until`; false when stopping.
  bool wait_until(std::chrono::steady_clock::time_point until, std::stop_token& stop);
  bool stopping(const std::stop_token& stop) const { return stop.stop_requested() || context().stopping(); }
  void warn_every(const std::string& text);

  NatsInputConfig config_;
  NatsPacer pacer_;
  std::shared_ptr<NatsConsumerSession> session_;
  // Tells the server, every ack_wait/6, which fetched messages are still being worked on.
  std::jthread progress_thread_;
  bool setup_busy_ = false;  // the last setup attempt timed out
  bool stream_missing_ = false;
  std::chrono::steady_clock::time_point last_warning_{};
  std::mutex wait_mutex_;
  std::condition_variable_any wakeup_;

  Counter* received_ = nullptr;
  Counter* redelivered_ = nullptr;
  Gauge* lag_ms_ = nullptr;
  Gauge* pending_ = nullptr;
};

}  // namespace doppel::plugins
