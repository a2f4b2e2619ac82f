#pragma once
// The `http` output: replays requests to one target over a pool of keep-alive connections
// and, with track_response, emits each response (or the error in its place) as `replay`.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

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

#include "doppel/http2.hpp"
#include "doppel/session_key.hpp"
#include "doppel/stage.hpp"
#include "request_rewrite.hpp"
#include "tls_client.hpp"

namespace doppel::plugins {

// Which HTTP version replays go out in (option `protocol`).
enum class ReplayProtocol {
  automatic,  // h2 messages over HTTP/2 while the target speaks it, the rest over HTTP/1.1
  h1,         // everything over HTTP/1.1 (an h2 message's HTTP/1.1 form is a valid request)
  h2,         // everything over HTTP/2; a target that does not speak it is an error per request
};

struct HttpOutputConfig {
  TargetUrl target;
  ReplayProtocol protocol = ReplayProtocol::automatic;
  std::size_t h2_max_streams = 100;  // streams on one HTTP/2 connection at most (the peer may say fewer)
  bool original_host = false;
  std::size_t workers = 64;       // connections, i.e. requests in flight at most
  std::size_t queue_size = 10000; // requests waiting for a connection
  bool wait_when_full = false;    // overflow = "wait": back-pressure instead of dropping
  bool overflow_follows_input = true;  // overflow = "auto": start() sets wait_when_full from what feeds the stage
  std::chrono::nanoseconds timeout = std::chrono::seconds(5);
  std::chrono::nanoseconds connect_timeout = std::chrono::seconds(2);
  TlsClientConfig tls;  // https targets: its context is built at configuration
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
  // The request as HTTP/2 header fields, DATA and trailers, made from the edited HTTP/1.1 form
  // when it may go out over HTTP/2; null when it goes out over HTTP/1.1.
  std::shared_ptr<const h2::StreamMessage> h2;
  int h2_attempts = 0;  // HTTP/2 connections it was handed back from unprocessed (GOAWAY, refused)
  std::string_view bytes() const {
    return outgoing.bytes.empty() ? std::string_view(request->payload) : std::string_view(outgoing.bytes);
  }
};

class ReplayConnection;
class H2Connection;

// Who takes an HTTP/2 connection's streams when they end: the output's HTTP/2 pool, or the
// ReplayConnection of one session. Called on the connection's executor, never from inside
// libnghttp2, so the owner may hand the connection its next request at once.
class H2StreamOwner {
 public:
  virtual ~H2StreamOwner() = default;
  // The connection is up (the target's SETTINGS arrived).
  virtual void h2_connected(H2Connection& connection) = 0;
  // Streams ended, their responses or errors reported: one entry each, the session it belonged
  // to (null when replayed freely).
  virtual void h2_streams_done(H2Connection& connection, const std::vector<std::shared_ptr<ReplaySession>>& sessions) = 0;
  // Requests the target never processed (GOAWAY, REFUSED_STREAM, never sent before the
  // connection went away): to go out again elsewhere. `no_h2`: the target does not speak
  // HTTP/2 (protocol = "auto"), they go out over HTTP/1.1 instead.
  virtual void h2_give_back(H2Connection& connection, std::vector<ReplayJob> jobs, bool no_h2) = 0;
  // The connection is closed; it takes no more requests and has none left.
  virtual void h2_closed(H2Connection& connection) = 0;
};

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

class HttpOutput : public Stage, private H2StreamOwner {
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
  StageContext& stage_context() { return context(); }
  // A job finished (response emitted or error counted); hands the connection its next job.
  // `session`: the session the job belonged to (null when replayed freely).
  void job_done(const std::shared_ptr<ReplayConnection>& connection, const std::shared_ptr<ReplaySession>& session);
  // A session's connection had to be opened again (it broke, the target closed it, it was
  // handed to another session).
  void session_reconnected() { session_reconnects_->add(); }
  // Counts an error under `reason` and, with tracking on, emits a `replay` that carries it
  // (meta.error = `detail`, or `reason` when there is none). `h2_stream`: the exchange went
  // out over HTTP/2 (meta.proto = "h2"; the stream id, 0 when it got none).
  void report_error(const ReplayJob& job, std::string_view reason, std::int64_t latency_ns,
                    std::string_view detail = {}, std::optional<std::uint32_t> h2_stream = std::nullopt);
  void report_response(const ReplayJob& job, std::string response, std::int64_t latency_ns,
                       std::optional<std::uint32_t> h2_stream = std::nullopt);
  // Whether `job` goes out over HTTP/2 now.
  bool use_h2(const ReplayJob& job) const {
    return job.h2 != nullptr && !(config_.protocol == ReplayProtocol::automatic && h1_only_);
  }
  // protocol = "auto": the target answered HTTP/2 as an HTTP/1.1 server (or chose http/1.1 in
  // ALPN); from now on everything goes out over HTTP/1.1. Logged once.
  void target_speaks_h1_only(std::string_view evidence);
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
  // HTTP/2 replay without sessions (h2_replay.cpp): requests multiplexed over few connections.
  void process_h2(ReplayJob job, std::unique_lock<std::mutex>& lock);
  struct H2Start {
    std::shared_ptr<H2Connection> connection;
    ReplayJob job;
  };
  // Hands queued HTTP/2 requests to connections with a free stream, opening one when all are
  // full (within `workers`). mutex_ held.
  std::vector<H2Start> pump_h2();
  void start_h2(std::vector<H2Start> starts, H2Connection* current);
  // An HTTP/1.1 connection for a request moved off HTTP/2, or null (then it queues). mutex_ held.
  std::shared_ptr<ReplayConnection> take_h1_connection();
  void update_in_flight_gauge();
  void h2_connected(H2Connection& connection) override;
  void h2_streams_done(H2Connection& connection, const std::vector<std::shared_ptr<ReplaySession>>& sessions) override;
  void h2_give_back(H2Connection& connection, std::vector<ReplayJob> jobs, bool no_h2) override;
  void h2_closed(H2Connection& connection) override;

  HttpOutputConfig config_;
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

  // HTTP/2 pool (no sessions). `active`: streams the output handed the connection, not ended.
  struct H2Slot {
    std::shared_ptr<H2Connection> connection;
    std::size_t active = 0;
  };
  std::vector<H2Slot> h2_slots_;
  std::deque<ReplayJob> h2_queue_;
  std::size_t h2_in_flight_ = 0;
  std::atomic<bool> h1_only_{false};

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
  Gauge* sessions_table_gauge_ = nullptr;  // the same number as table.sessions (docs/operations.md)
  Gauge* sessions_active_gauge_ = nullptr;
};

}  // namespace doppel::plugins
