// Session-aware replay (`session = ...`): each session's requests in captured order, one at a
// time, on a target connection of its own; sessions in parallel, at most `workers` at once,
// the others waiting in line in arrival order. Requests without a session key wait in the
// same line and replay freely.
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "http_output.hpp"
#include "replay_connection.hpp"

namespace doppel::plugins {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

void HttpOutput::process_in_session(ReplayJob job, std::unique_lock<std::mutex>& lock) {
  std::optional<std::string> key = session_key_of(*config_.session, *job.request);
  if (!key) {
    session_no_key_->add();
    if (config_.session->source == SessionKeySpec::Source::connection && !warned_no_connection_id_) {
      warned_no_connection_id_ = true;
      context().log().warn(
          "session = \"connection\": requests without a captured connection id (.gor files record none) replay "
          "outside any session (counted as sessions.no_key); key sessions by a header, cookie or param, or replay "
          "the capture (pcap) with the raw input");
    }
  }
  auto now = Clock::now();
  if (now >= next_expiry_sweep_) {
    expire_sessions(now);
    next_expiry_sweep_ = now + std::min<Clock::duration>(std::chrono::seconds(1), config_.session_idle_timeout / 4);
  }
  // Why this request cannot be taken now ("" when it can).
  auto blocked_by = [&]() -> std::string_view {
    std::shared_ptr<ReplaySession> session;
    if (key) {
      auto it = sessions_.find(*key);
      if (it != sessions_.end()) session = it->second;
      else if (sessions_.size() >= config_.max_sessions && idle_sessions_.empty()) return "session_limit";
    }
    bool starts_now;
    if (session && (session->running || session->waiting)) starts_now = false;  // queued behind its own
    else if (session && session->connection) starts_now = true;                  // its connection is idle
    else starts_now = has_free_connection();
    if (!starts_now && session_queued_ >= config_.queue_size) return "queue_full";
    return {};
  };
  for (;;) {
    if (stopping_) {
      lock.unlock();
      context().drop("shutdown");
      return;
    }
    std::string_view blocked = blocked_by();
    if (blocked.empty()) break;
    if (!config_.wait_when_full) {
      lock.unlock();
      context().drop(blocked);
      return;
    }
    waiting_for_room_ = true;
    changed_.wait(lock, [&] { return stopping_ || blocked_by().empty(); });
    waiting_for_room_ = false;
  }

  if (!key) {
    bool from_session = false;
    if (auto connection = free_connection(from_session)) {
      ++in_flight_;
      update_in_flight_gauge();
      lock.unlock();
      dispatch(std::move(connection), std::move(job), from_session);
      return;
    }
    waiting_.push_back(Waiting{nullptr, std::move(job)});
    ++session_queued_;
    queued_gauge_->set(static_cast<std::int64_t>(queue_.size() + session_queued_));
    return;
  }

  auto it = sessions_.find(*key);
  if (it == sessions_.end()) {
    if (sessions_.size() >= config_.max_sessions) {
      // The limit is reached: the session idle the longest makes room (blocked_by saw one).
      forget_session(*idle_sessions_.front());
      sessions_evicted_->add();
    }
    auto session = std::make_shared<ReplaySession>();
    session->key = *key;
    session->last_active = now;
    it = sessions_.emplace(*key, std::move(session)).first;
    sessions_started_->add();
  }
  std::shared_ptr<ReplaySession> session = it->second;
  job.session = session;
  session->jobs.push_back(std::move(job));
  ++session_queued_;
  if (!session->running && !session->waiting) {
    make_busy(*session);
    std::optional<Start> start;
    if (session->connection) {
      start = start_session(session, session->connection, false);
    } else {
      bool from_session = false;
      if (auto connection = free_connection(from_session)) start = start_session(session, std::move(connection), true);
    }
    if (start) {
      ++in_flight_;
      update_in_flight_gauge();
      update_session_gauges();
      lock.unlock();
      dispatch(std::move(start->connection), std::move(start->job), start->fresh);
      return;
    }
    session->waiting = true;
    waiting_.push_back(Waiting{session, {}});
  }
  queued_gauge_->set(static_cast<std::int64_t>(queue_.size() + session_queued_));
  update_session_gauges();
}

void HttpOutput::session_job_done(const std::shared_ptr<ReplayConnection>& connection,
                                  const std::shared_ptr<ReplaySession>& session, std::unique_lock<std::mutex>& lock) {
  ++finished_;
  std::optional<Start> next;
  bool wake = waiting_for_room_;
  if (session) {
    session->running = false;
    --running_sessions_;
    if (stopping_) {
      session->connection.reset();
    } else if (!session->jobs.empty()) {
      // The session's next request, on the same connection, now that the previous one is answered.
      next = start_session(session, connection, false);
    } else if (!waiting_.empty()) {
      // Others wait for a connection: this one leaves the session, which goes on on a new
      // connection when it has work again (a slow or idle session never blocks others).
      session->connection.reset();
      make_idle(*session);
      next = serve_waiting(connection, true);
    } else {
      make_idle(*session);  // keeps its connection for its next request
    }
  } else if (!stopping_) {
    next = serve_waiting(connection, false);
  }
  if (!next) {
    --in_flight_;
    update_in_flight_gauge();
    if (!session) idle_.push_back(connection);
    wake = wake || in_flight_ == 0;  // a waiting process(), or flush() done
  }
  queued_gauge_->set(static_cast<std::int64_t>(queue_.size() + session_queued_));
  update_session_gauges();
  lock.unlock();
  if (wake) changed_.notify_all();
  if (next) {
    sent_->add();
    next->connection->run(std::move(next->job), next->fresh);  // already on the connection's executor
  }
}

bool HttpOutput::has_free_connection() const {
  return !idle_.empty() || connections_.size() < config_.workers || !parked_sessions_.empty();
}

std::shared_ptr<ReplayConnection> HttpOutput::free_connection(bool& from_session) {
  from_session = false;
  if (auto connection = take_h1_connection()) return connection;
  if (!parked_sessions_.empty()) {
    // Every connection is taken: the session idle the longest gives its own up.
    ReplaySession& owner = *parked_sessions_.front();
    parked_sessions_.pop_front();
    owner.parked = false;
    from_session = true;
    return std::move(owner.connection);
  }
  return nullptr;
}

HttpOutput::Start HttpOutput::start_session(const std::shared_ptr<ReplaySession>& session,
                                            std::shared_ptr<ReplayConnection> connection, bool fresh) {
  session->connection = connection;
  session->running = true;
  session->waiting = false;
  ++running_sessions_;
  Start start{std::move(connection), std::move(session->jobs.front()), fresh};
  session->jobs.pop_front();
  --session_queued_;
  return start;
}

std::optional<HttpOutput::Start> HttpOutput::serve_waiting(std::shared_ptr<ReplayConnection> connection,
                                                           bool from_session) {
  if (waiting_.empty()) return std::nullopt;
  Waiting next = std::move(waiting_.front());
  waiting_.pop_front();
  // A session always starts on a connection of its own; a free request only avoids one that
  // carried a session.
  if (next.session) return start_session(next.session, std::move(connection), true);
  --session_queued_;
  return Start{std::move(connection), std::move(next.free_job), from_session};
}

void HttpOutput::make_idle(ReplaySession& session) {
  session.last_active = Clock::now();
  session.idle = true;
  session.idle_position = idle_sessions_.insert(idle_sessions_.end(), &session);
  if (session.connection) {
    session.parked = true;
    session.parked_position = parked_sessions_.insert(parked_sessions_.end(), &session);
  }
}

void HttpOutput::make_busy(ReplaySession& session) {
  if (session.idle) idle_sessions_.erase(session.idle_position);
  if (session.parked) parked_sessions_.erase(session.parked_position);
  session.idle = session.parked = false;
}

void HttpOutput::forget_session(ReplaySession& session) {
  make_busy(session);
  if (session.connection) {
    // Closed before anyone else uses it: the target sees the session end with its connection.
    auto connection = std::move(session.connection);
    asio::post(connection->executor(), [connection] { connection->close(); });
    idle_.push_back(std::move(connection));
  }
  sessions_.erase(sessions_.find(session.key));
}

void HttpOutput::expire_sessions(Clock::time_point now) {
  while (!idle_sessions_.empty() && now - idle_sessions_.front()->last_active >= config_.session_idle_timeout) {
    forget_session(*idle_sessions_.front());
    sessions_expired_->add();
  }
  update_session_gauges();
}

void HttpOutput::update_session_gauges() {
  sessions_gauge_->set(static_cast<std::int64_t>(sessions_.size()));
  sessions_table_gauge_->set(static_cast<std::int64_t>(sessions_.size()));
  sessions_active_gauge_->set(static_cast<std::int64_t>(running_sessions_));
}

}  // namespace doppel::plugins
