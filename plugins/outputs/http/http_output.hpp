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
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "doppel/session_key.hpp"
#include "doppel/stage.hpp"
#include "request_rewrite.hpp"

namespace doppel::plugins {

struct HttpOutputConfig {
  TargetUrl target;
  bool original_host = false;
  std::size_t workers = 64;       // connections, i.e. requests in flight at most
  std::size_t queue_size = 10000; // requests waiting for a connection
  bool wait_when_full = false;    // overflow = "wait": back-pressure instead of dropping
  bool overflow_follows_input = true;  // overflow = "auto": start() sets wait_when_full from what feeds the stage
  std::chrono::nanoseconds timeout = std::chrono::seconds(5);
  std::chrono::nanoseconds connect_timeout = std::chrono::seconds(2);
  bool tls_skip_verify = false;
  bool track_response = false;
  std::size_t max_response_size = std::size_t{64} << 20;
  std::size_t io_threads = 1;
  // Session-aware replay (`session = ...`): nullopt replays every request freely over the pool.
  std::optional<SessionKeySpec> session;
  std::size_t max_sessions = 10000;                              // sessions tracked at once
  std::chrono::nanoseconds session_idle_timeout = std::chrono::seconds(60);  // forgotten after
};

struct ReplaySession;

// One request on its way: the captured message and, when edited, the bytes to send.
struct ReplayJob {
  MessagePtr request;
  OutgoingRequest outgoing;
  std::shared_ptr<ReplaySession> session;  // null: replayed freely
  std::string_view bytes() const {
    return outgoing.bytes.empty() ? std::string_view(request->payload) : std::string_view(outgoing.bytes);
  }
};

class ReplayConnection;

// One session of session-aware replay: its requests in captured order, sent one at a time on
// a target connection of its own. Guarded by the output's mutex, except `ever_connected`,
// which only the connection running the session's one request in flight touches.
struct ReplaySession {
  std::string key;
  std::deque<ReplayJob> jobs;                    // captured order, not sent yet
  std::shared_ptr<ReplayConnection> connection;  // its own target connection, while it holds one
  bool running = false;                          // one of its requests is on `connection`
  bool waiting = false;                          // in the output's waiting line for a connection
  bool ever_connected = false;                   // a later connect is a reconnect (counted)
  std::chrono::steady_clock::time_point last_active;
  std::list<ReplaySession*>::iterator idle_position;    // valid while idle (no work, not running)
  std::list<ReplaySession*>::iterator parked_position;  // valid while idle holding a connection
  bool idle = false, parked = false;
};

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
  // `session`: the session the job belonged to (null when replayed freely).
  void job_done(const std::shared_ptr<ReplayConnection>& connection, const std::shared_ptr<ReplaySession>& session);
  // A session's connection had to be opened again (it broke, the target closed it, it was
  // handed to another session).
  void session_reconnected() { session_reconnects_->add(); }
  // Counts an error and, with tracking on, emits a `replay` that carries it.
  void report_error(const ReplayJob& job, std::string_view reason, std::int64_t latency_ns);
  void report_response(const ReplayJob& job, std::string response, std::int64_t latency_ns);
  bool stopping() const { return stopping_; }

 private:
  void dispatch(std::shared_ptr<ReplayConnection> connection, ReplayJob job, bool fresh = false);
  // Session-aware replay (config_.session set); all called with mutex_ held.
  void process_in_session(ReplayJob job, std::unique_lock<std::mutex>& lock);
  void session_job_done(const std::shared_ptr<ReplayConnection>& connection,
                        const std::shared_ptr<ReplaySession>& session, std::unique_lock<std::mutex>& lock);
  // A connection no one is using: idle, new (within `workers`), or taken from the session idle
  // the longest (`from_session` set). Null when every connection is busy.
  bool has_free_connection() const;
  std::shared_ptr<ReplayConnection> free_connection(bool& from_session);
  // The next request of a session, to run on `connection` (the session's own from now on)
  // once the lock is released; `fresh`: on a new connection rather than as it is.
  struct Start {
    std::shared_ptr<ReplayConnection> connection;
    ReplayJob job;
    bool fresh = false;
  };
  Start start_session(const std::shared_ptr<ReplaySession>& session, std::shared_ptr<ReplayConnection> connection,
                      bool fresh);
  // What the first in the waiting line starts on `connection`; nullopt when no one waits.
  std::optional<Start> serve_waiting(std::shared_ptr<ReplayConnection> connection, bool from_session);
  void make_idle(ReplaySession& session);
  void make_busy(ReplaySession& session);
  void forget_session(ReplaySession& session);
  void expire_sessions(std::chrono::steady_clock::time_point now);
  void update_session_gauges();

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

  // Session-aware replay. A connection belongs to at most one session at a time and is closed
  // when it leaves it, so the target sees each session on connections of its own.
  std::unordered_map<std::string, std::shared_ptr<ReplaySession>> sessions_;
  // Who waits for a connection, in arrival order: a session (with requests in `jobs`), or a
  // request without a session key (in `free_job`).
  struct Waiting {
    std::shared_ptr<ReplaySession> session;
    ReplayJob free_job;
  };
  std::deque<Waiting> waiting_;
  std::list<ReplaySession*> idle_sessions_;    // no work, not running; least recently active first
  std::list<ReplaySession*> parked_sessions_;  // idle and holding a connection; same order
  std::size_t session_queued_ = 0;             // requests in sessions' `jobs` and free ones in waiting_
  std::size_t running_sessions_ = 0;           // sessions with a request on their connection
  std::chrono::steady_clock::time_point next_expiry_sweep_{};
  bool warned_no_connection_id_ = false;
  Counter* sessions_started_ = nullptr;
  Counter* sessions_expired_ = nullptr;
  Counter* sessions_evicted_ = nullptr;
  Counter* session_reconnects_ = nullptr;
  Counter* session_no_key_ = nullptr;
  Gauge* sessions_gauge_ = nullptr;
  Gauge* sessions_active_gauge_ = nullptr;
};

}  // namespace doppel::plugins
