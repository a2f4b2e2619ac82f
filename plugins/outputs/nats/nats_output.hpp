#pragma once
// The `nats` output: publishes messages to a JetStream subject, a request together with its
// original response in one NATS message (so one worker gets both), with Nats-Msg-Id set so
// the stream de-duplicates re-publishes.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "doppel/nats_connection.hpp"
#include "doppel/stage.hpp"

namespace doppel::plugins {

struct NatsStreamSettings {
  std::string name;
  bool create = false;
  int replicas = 1;
  std::chrono::nanoseconds max_age{0};      // 0: unlimited
  std::int64_t max_bytes = -1;              // -1: unlimited
  std::chrono::nanoseconds duplicate_window = std::chrono::minutes(2);
  bool file_storage = true;
};

struct NatsOutputConfig {
  nats::NatsConnectionConfig connection;
  std::string subject = "doppel.capture";
  NatsStreamSettings stream;
  bool pair = true;                           // hold a request until its response, publish both
  std::chrono::nanoseconds pair_timeout = std::chrono::seconds(10);
  std::size_t pair_capacity = 100000;         // requests held waiting for their response
  std::size_t max_pending = 1024;             // published, not yet acknowledged by the stream
  std::size_t buffer_messages = 100000;       // NATS messages not acknowledged yet, in memory
  std::uint64_t buffer_bytes = 256ull << 20;
  bool wait_when_full = true;                 // overflow = "wait"
  std::chrono::nanoseconds ack_timeout = std::chrono::seconds(5);
};

// Compares a stream's settings with the pipeline's; "" when they agree, else what differs.
std::string stream_differences(const jsStreamConfig& existing, const NatsOutputConfig& wanted);

class NatsOutput : public Stage {
 public:
  explicit NatsOutput(NatsOutputConfig config);
  ~NatsOutput() override;

  void start(StageContext& context) override;
  void process(const MessagePtr& message) override;
  void flush() override;
  void stop() override;
  std::size_t pending() const override;

 private:
  struct Held {  // a request waiting for its original response
    MessagePtr request;
    std::chrono::steady_clock::time_point deadline;
  };
  struct Entry {  // a NATS message not yet acknowledged by the stream
    std::string body;
    bool in_flight = false;
    std::shared_ptr<const void> lease;  // of the records in it: released once the stream has them
  };

  static void on_connected(natsConnection* nc, void* self);
  static void on_ack(jsCtx* js, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* self);
  void acknowledged(natsMsg* msg, jsPubAck* ack, jsPubAckErr* error);

  // Checks or creates the stream; returns the problem, "" when all is well.
  std::string ensure_stream();
  // Queues a body for publishing, waiting for room or dropping as `overflow` says. Locked.
  void enqueue(std::unique_lock<std::mutex>& lock, std::string msg_id, std::string body,
               std::shared_ptr<const void> lease);
  void publish_alone(std::unique_lock<std::mutex>& lock, const MessagePtr& message, const char* kinds);
  void release_held(std::unique_lock<std::mutex>& lock, bool all);
  void publisher_loop(std::stop_token stop);
  bool connected() const;

  NatsOutputConfig config_;
  natsConnection* connection_ = nullptr;
  jsCtx* js_ = nullptr;
  std::jthread publisher_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;         // room in the buffer, or the stream acknowledged something
  std::size_t changed_waiters_ = 0;         // process() waiting for room, flush() for acknowledgements
  std::condition_variable publisher_wake_;  // something to publish, or room to publish it
  bool publisher_waiting_ = false;
  std::unordered_map<std::string, Held> held_;
  std::deque<std::string> held_order_;
  std::unordered_map<std::string, Entry> entries_;
  std::deque<std::string> ready_;  // ids of entries to (re)publish
  std::uint64_t buffered_bytes_ = 0;
  std::size_t in_flight_ = 0;
  std::uint64_t acked_total_ = 0;
  std::chrono::steady_clock::time_point retry_after_{};
  bool stream_checked_ = false;
  bool stopping_ = false;
  bool started_ = false;

  Counter* published_ = nullptr;
  Counter* duplicates_ = nullptr;
  Counter* republished_ = nullptr;
  Counter* paired_ = nullptr;
  Counter* unpaired_requests_ = nullptr;
  Counter* unpaired_responses_ = nullptr;
  Gauge* buffered_ = nullptr;
  Gauge* in_flight_gauge_ = nullptr;
  Gauge* held_gauge_ = nullptr;
  Gauge* held_table_gauge_ = nullptr;  // the same number as table.held_requests (docs/operations.md)
};

}  // namespace doppel::plugins
