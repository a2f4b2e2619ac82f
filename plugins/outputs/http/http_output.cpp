#include "http_output.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "h2_connection.hpp"
#include "replay_connection.hpp"

namespace doppel::plugins {

namespace asio = boost::asio;

HttpOutput::HttpOutput(HttpOutputConfig config) : config_(std::move(config)) {}

HttpOutput::~HttpOutput() {
  // Connections refer to this output; none may still be working when it goes away.
  if (!stopping_) stop();
}

void HttpOutput::start(StageContext& context) {
  Stage::start(context);
  if (config_.overflow_follows_input) config_.wait_when_full = context.overflow_policy() == OverflowPolicy::block;
  started_ = true;
  work_.emplace(io_.get_executor());
  for (std::size_t i = 0; i < config_.io_threads; ++i) io_threads_.emplace_back([this] { io_.run(); });
  in_flight_gauge_ = &context.gauge("in_flight");
  queued_gauge_ = &context.gauge("queued");
  sent_ = &context.counter("sent");
  responses_ = &context.counter("responses");
  if (config_.session) {
    sessions_started_ = &context.counter("sessions.started");
    sessions_expired_ = &context.counter("sessions.expired");
    sessions_evicted_ = &context.counter("sessions.evicted");
    session_reconnects_ = &context.counter("sessions.reconnects");
    session_no_key_ = &context.counter("sessions.no_key");
    sessions_gauge_ = &context.gauge("sessions");
    sessions_table_gauge_ = &context.gauge("table.sessions");
    sessions_active_gauge_ = &context.gauge("sessions.active");
  }
}

std::optional<KindSet> HttpOutput::produces() const {
  return config_.track_response ? KindSet{Kind::replay} : KindSet{};
}

std::size_t HttpOutput::pending() const {
  std::lock_guard lock(mutex_);
  return queue_.size() + session_queued_ + in_flight_ + h2_queue_.size() + h2_in_flight_;
}

void HttpOutput::update_in_flight_gauge() {
  in_flight_gauge_->set(static_cast<std::int64_t>(in_flight_ + h2_in_flight_));
}

void HttpOutput::dispatch(std::shared_ptr<ReplayConnection> connection, ReplayJob job, bool fresh) {
  sent_->add();
  asio::post(connection->executor(),
             [connection, job = std::move(job), fresh]() mutable { connection->run(std::move(job), fresh); });
}

void HttpOutput::process(const MessagePtr& message) {
  auto outgoing = prepare_request(*message, config_.target, config_.original_host);
  if (!outgoing) {
    context().drop("unparseable_request");
    return;
  }
  ReplayJob job{message, std::move(*outgoing), nullptr, nullptr, 0};
  if (config_.protocol == ReplayProtocol::h2 ||
      (config_.protocol == ReplayProtocol::automatic && message->meta.proto == "h2" && !h1_only_)) {
    // Made from the edited HTTP/1.1 form, so Host (-> :authority) and the base path apply.
    std::string error;
    auto stream = h2::request_from_http1(job.bytes(), config_.target.tls ? "https" : "http", error);
    if (!stream) {
      context().log().debug("request {} has no HTTP/2 form: {}", message->id, error);
      context().drop("unparseable_request");
      return;
    }
    job.h2 = std::make_shared<const h2::StreamMessage>(std::move(*stream));
  }
  std::unique_lock lock(mutex_);
  if (config_.session) return process_in_session(std::move(job), lock);
  if (use_h2(job)) return process_h2(std::move(job), lock);
  for (;;) {
    if (stopping_) {
      lock.unlock();
      context().drop("shutdown");
      return;
    }
    std::shared_ptr<ReplayConnection> connection;
    if (!idle_.empty()) {
      connection = std::move(idle_.back());
      idle_.pop_back();
    } else if (connections_.size() < config_.workers) {
      connection = std::make_shared<ReplayConnection>(*this, io_, config_.io_threads > 1);
      connections_.push_back(connection);
    }
    if (connection) {
      ++in_flight_;
      update_in_flight_gauge();
      lock.unlock();
      dispatch(std::move(connection), std::move(job));
      return;
    }
    if (queue_.size() < config_.queue_size) {
      queue_.push_back(std::move(job));
      queued_gauge_->set(static_cast<std::int64_t>(queue_.size()));
      return;
    }
    if (!config_.wait_when_full) {
      lock.unlock();
      context().drop("queue_full");
      return;
    }
    // overflow = "wait": hold the pipeline back until connections have taken a batch of the
    // queue (see job_done).
    waiting_for_room_ = true;
    changed_.wait(lock, [&] { return queue_.size() <= low_water() || stopping_; });
    waiting_for_room_ = false;
  }
}

void HttpOutput::job_done(const std::shared_ptr<ReplayConnection>& connection,
                          const std::shared_ptr<ReplaySession>& session) {
  std::unique_lock lock(mutex_);
  if (config_.session) return session_job_done(connection, session, lock);
  ++finished_;
  if (!queue_.empty() && !stopping_) {
    ReplayJob job = std::move(queue_.front());
    queue_.pop_front();
    queued_gauge_->set(static_cast<std::int64_t>(queue_.size()));
    // Wake a waiting process() only once a batch of room is free: waking it per request
    // costs two context switches per replayed request.
    bool wake = waiting_for_room_ && queue_.size() <= low_water();
    lock.unlock();
    if (wake) changed_.notify_all();
    sent_->add();
    connection->run(std::move(job));  // already on the connection's executor
    return;
  }
  --in_flight_;
  update_in_flight_gauge();
  idle_.push_back(connection);
  bool wake = waiting_for_room_ || in_flight_ == 0;  // a waiting process(), or flush() done
  lock.unlock();
  if (wake) changed_.notify_all();
}

void HttpOutput::report_error(const ReplayJob& job, std::string_view reason, std::int64_t latency_ns,
                              std::string_view detail, std::optional<std::uint32_t> h2_stream) {
  if (reason == "shutdown") {
    context().drop("shutdown");
    return;
  }
  context().fail(reason);
  if (!config_.track_response) return;
  Message m(Kind::replay, job.request->id, now_ns(), std::string());
  m.lease = job.request->lease;  // derived from the request: holds its source's lease
  m.latency_ns = latency_ns;
  m.meta.error = std::string(detail.empty() ? reason : detail);
  m.meta.source = Endpoint{config_.target.host, config_.target.port};
  m.meta.connection_id = job.request->meta.connection_id;
  if (h2_stream) {
    m.meta.proto = "h2";
    m.meta.stream_id = *h2_stream;
  }
  context().emit(share(std::move(m)));
}

void HttpOutput::report_response(const ReplayJob& job, std::string response, std::int64_t latency_ns,
                                 std::optional<std::uint32_t> h2_stream) {
  responses_->add();
  if (!config_.track_response) return;
  Message m(Kind::replay, job.request->id, now_ns(), std::move(response));
  m.lease = job.request->lease;  // derived from the request: holds its source's lease
  m.latency_ns = latency_ns;
  m.meta.source = Endpoint{config_.target.host, config_.target.port};
  m.meta.connection_id = job.request->meta.connection_id;
  if (h2_stream) {
    m.meta.proto = "h2";
    m.meta.stream_id = *h2_stream;
  }
  context().emit(share(std::move(m)));
}

void HttpOutput::target_speaks_h1_only(std::string_view evidence) {
  if (h1_only_.exchange(true)) return;
  context().log().warn("{} ({}): replaying over HTTP/1.1 from now on (protocol = \"auto\")", evidence,
                       config_.target.host_header);
}

void HttpOutput::flush() {
  // Waits while responses keep arriving; gives up when nothing finished for longer than a
  // request can take (connect + exchange), so a dead target cannot hang the drain.
  const auto window = config_.connect_timeout + config_.timeout + std::chrono::seconds(1);
  std::unique_lock lock(mutex_);
  std::uint64_t seen = finished_;
  auto deadline = std::chrono::steady_clock::now() + window;
  auto left = [&] { return queue_.size() + session_queued_ + in_flight_ + h2_queue_.size() + h2_in_flight_; };
  while (left() > 0) {
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) {
      if (finished_ == seen) {
        context().log().warn("{} request(s) still in flight after {}ms without progress", left(),
                             std::chrono::duration_cast<std::chrono::milliseconds>(window).count());
        return;
      }
    }
    if (finished_ != seen) {
      seen = finished_;
      deadline = std::chrono::steady_clock::now() + window;
    }
  }
}

void HttpOutput::stop() {
  std::unique_lock lock(mutex_);
  if (stopping_) return;
  stopping_ = true;
  std::size_t abandoned = queue_.size() + session_queued_ + h2_queue_.size();
  queue_.clear();
  h2_queue_.clear();
  waiting_.clear();
  for (auto& [key, session] : sessions_) session->jobs.clear();
  session_queued_ = 0;
  auto connections = connections_;
  std::vector<std::shared_ptr<H2Connection>> h2_connections;
  for (auto& slot : h2_slots_) h2_connections.push_back(slot.connection);
  lock.unlock();
  changed_.notify_all();
  if (abandoned > 0 && started_) context().drop("shutdown", abandoned);
  for (auto& connection : connections)
    asio::post(connection->executor(), [connection] { connection->abort(); });
  for (auto& connection : h2_connections)
    asio::post(connection->executor(), [connection] { connection->abort(); });
  // Aborted exchanges complete on the I/O threads; wait for them (bounded).
  lock.lock();
  changed_.wait_for(lock, std::chrono::seconds(5), [&] { return in_flight_ == 0 && h2_in_flight_ == 0; });
  idle_.clear();
  h2_slots_.clear();
  connections_.clear();
  idle_sessions_.clear();
  parked_sessions_.clear();
  for (auto& [key, session] : sessions_) session->connection.reset();
  sessions_.clear();
  lock.unlock();
  work_.reset();
  io_.stop();
  for (auto& t : io_threads_) t.join();
  io_threads_.clear();
}

}  // namespace doppel::plugins
