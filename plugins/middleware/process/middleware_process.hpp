#pragma once
// The `process` middleware: runs an external program and speaks GoReplay's middleware
// protocol with it (hex lines on stdin/stdout). What the program writes back is emitted;
// what it does not is dropped and counted. Restarted when it exits, if so configured.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "doppel/child_process.hpp"
#include "doppel/stage.hpp"
#include "exchange_order.hpp"

namespace doppel::plugins {

struct ProcessMiddlewareConfig {
  std::vector<std::string> argv;
  bool restart = true;  // restart = "always"
  std::chrono::nanoseconds backoff = std::chrono::milliseconds(100);
  std::chrono::nanoseconds backoff_max = std::chrono::seconds(10);
  std::size_t max_line = std::size_t{256} << 20;  // hex bytes of one line written back
  // After this long with nothing sent or written back, messages not written back count as dropped.
  std::chrono::nanoseconds return_timeout = std::chrono::seconds(2);
  // Per-id order (request, original response, replay) of what the program is given.
  enum class Order {
    automatic,  // per_id when original responses can reach the stage, else arrival
    per_id,
    arrival,
  };
  Order order = Order::automatic;
  std::size_t hold_max = 10000;
  std::chrono::nanoseconds hold_timeout = std::chrono::seconds(5);
};

class ProcessMiddleware : public Stage {
 public:
  explicit ProcessMiddleware(ProcessMiddlewareConfig config);
  ~ProcessMiddleware() override;

  void start(StageContext& context) override;
  void process(const MessagePtr& message) override;  // in per-id order, when holding
  void flush() override;
  void stop() override;
  std::size_t pending() const override;

 private:
  using Child = ChildProcess;
  Child spawn();  // throws std::runtime_error when the program cannot be started
  void send(const MessagePtr& message);  // writes one message to the program
  // Holding (see ExchangeOrder): sends what became ready, with order_mutex_ held so that
  // messages reach the program in the order they were released; updates the counters.
  void send_released(std::vector<MessagePtr>& ready);
  void release_expired();  // the expiry thread
  void stop_holding();     // stops the expiry thread; what is still held is dropped (shutdown)
  void supervise();
  void read_stdout(int fd);
  void handle_line(std::string_view line);
  void forward_stderr(int fd, pid_t pid);
  // Counts messages never written back; `force` ignores return_timeout (shutdown).
  void write_off_unreturned(bool force);
  // Leases of sent messages (see Message::lease) until the program writes back one with the same
  // id, which replaces the message and takes the lease over. Called with mutex_ held.
  void hold_lease(const Message& message, std::chrono::steady_clock::time_point now);
  std::shared_ptr<const void> take_lease(const Message& returned);
  // Moves out the leases of messages the program dropped (all when `all`), so that their
  // sources may be acknowledged. Called with mutex_ held.
  void release_leases(bool all, std::vector<std::shared_ptr<const void>>& released);

  ProcessMiddlewareConfig config_;
  std::string command_text_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::mutex write_mutex_;  // held while writing to the child's stdin
  Child child_;
  bool alive_ = false;
  bool stopping_ = false;
  bool supervisor_done_ = false;
  std::uint64_t sent_ = 0, returned_ = 0, written_off_ = 0;
  struct HeldLease {
    Kind kind;
    std::uint64_t number;  // sent_ when it was sent
    std::chrono::steady_clock::time_point sent_at;
    std::shared_ptr<const void> lease;
  };
  std::unordered_map<std::string, std::vector<HeldLease>> leases_;  // by id
  std::deque<std::tuple<std::chrono::steady_clock::time_point, std::uint64_t, std::string>> lease_order_;  // sent order
  std::size_t leases_held_ = 0;  // HeldLease entries in leases_ (lease_order_ may hold stale ones)
  Gauge* leases_gauge_ = nullptr;
  // When the latest-sent message the program wrote back was sent: how far it has caught up.
  std::chrono::steady_clock::time_point answered_up_to_{};
  std::chrono::steady_clock::time_point last_activity_;
  std::thread supervisor_;

  std::optional<ExchangeOrder> order_;  // engaged when holding
  std::mutex order_mutex_;              // guards order_; held while sending what it released
  std::condition_variable order_changed_;
  bool order_stopping_ = false;
  std::atomic<std::size_t> held_now_{0};
  std::thread expiry_;
  Counter* held_counter_ = nullptr;
  Counter* held_expired_ = nullptr;
  Counter* held_overflow_ = nullptr;
  Counter* held_flushed_ = nullptr;
  Gauge* holding_ = nullptr;
  Counter* ids_forgotten_ = nullptr;
  Gauge* ids_gauge_ = nullptr;
  ExchangeOrder::Counts reported_;  // counts already added to the counters above
  Counter* sent_counter_ = nullptr;
  Counter* returned_counter_ = nullptr;
  Counter* restarts_ = nullptr;
};

}  // namespace doppel::plugins
