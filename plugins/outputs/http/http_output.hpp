#pragma once
// The `http` output: replays requests to one target over a pool of keep-alive connections
// and, with track_response, emits each response (or the error in its place) as `replay`.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "doppel/stage.hpp"
#include "request_rewrite.hpp"

namespace doppel::plugins {

struct HttpOutputConfig {
  TargetUrl target;
  bool original_host = false;
  std::size_t workers = 64;       // connections, i.e. requests in flight at most
  std::size_t queue_size = 10000; // requests waiting for a connection
  bool wait_when_full = false;    // overflow = "wait": back-pressure instead of dropping
  std::chrono::nanoseconds timeout = std::chrono::seconds(5);
  std::chrono::nanoseconds connect_timeout = std::chrono::seconds(2);
  bool tls_skip_verify = false;
  bool track_response = false;
  std::size_t max_response_size = std::size_t{64} << 20;
  std::size_t io_threads = 1;
};

// One request on its way: the captured message and, when edited, the bytes to send.
struct ReplayJob {
  MessagePtr request;
  OutgoingRequest outgoing;
  std::string_view bytes() const {
    return outgoing.bytes.empty() ? std::string_view(request->payload) : std::string_view(outgoing.bytes);
  }
};

class ReplayConnection;

class HttpOutput : public Stage {
 public:
  explicit HttpOutput(HttpOutputConfig config);
  ~HttpOutput() override;

  void start(StageContext& context) override;
  void process(const MessagePtr& message) override;
  void flush() override;
  void stop() override;
  std::size_t pending() const override;
  std::optional<KindSet> produces() const override;

  // Called by connections, on their executor.
  const HttpOutputConfig& config() const { return config_; }
  boost::asio::ssl::context& tls_context() { return *tls_; }
  StageContext& stage_context() { return context(); }
  // A job finished (response emitted or error counted); hands the connection its next job.
  void job_done(const std::shared_ptr<ReplayConnection>& connection);
  // Counts an error and, with tracking on, emits a `replay` that carries it.
  void report_error(const ReplayJob& job, std::string_view reason, std::int64_t latency_ns);
  void report_response(const ReplayJob& job, std::string response, std::int64_t latency_ns);
  bool stopping() const { return stopping_; }

 private:
  void dispatch(std::shared_ptr<ReplayConnection> connection, ReplayJob job);

  HttpOutputConfig config_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
  // Our own I/O context and threads: Boost.Asio is header-only, and its services must not be
  // shared across the plugin boundary (the runtime's io() is built from another copy).
  boost::asio::io_context io_{static_cast<int>(config_.io_threads)};  // concurrency hint
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::thread> io_threads_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;  // room in the queue for a waiting process(), or all done
  bool waiting_for_room_ = false;    // process() waits for room (overflow = "wait")
  // Queue length at which a waiting process() is woken again.
  std::size_t low_water() const { return config_.queue_size - std::max<std::size_t>(1, config_.queue_size / 4); }
  std::deque<ReplayJob> queue_;
  std::vector<std::shared_ptr<ReplayConnection>> connections_;
  std::vector<std::shared_ptr<ReplayConnection>> idle_;
  std::size_t in_flight_ = 0;
  std::uint64_t finished_ = 0;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  Gauge* in_flight_gauge_ = nullptr;
  Gauge* queued_gauge_ = nullptr;
  Counter* sent_ = nullptr;
  Counter* responses_ = nullptr;
};

}  // namespace doppel::plugins
