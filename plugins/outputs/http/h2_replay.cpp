// HTTP/2 replay without sessions: requests multiplexed over as few connections as the
// target's stream limit allows. `workers` bounds the requests in flight, as over HTTP/1.1;
// a connection takes up to h2_max_streams of them (fewer when the target's
// SETTINGS_MAX_CONCURRENT_STREAMS says so), and another opens only when all are full.
#include <boost/asio/post.hpp>

#include "h2_connection.hpp"
#include "http_output.hpp"
#include "replay_connection.hpp"

namespace doppel::plugins {

namespace asio = boost::asio;

void HttpOutput::process_h2(ReplayJob job, std::unique_lock<std::mutex>& lock) {
  for (;;) {
    if (stopping_) {
      lock.unlock();
      context().drop("shutdown");
      return;
    }
    // Room: a stream free now, or a place in the queue.
    if (h2_in_flight_ < config_.workers || h2_queue_.size() < config_.queue_size) break;
    if (!config_.wait_when_full) {
      lock.unlock();
      context().drop("queue_full");
      return;
    }
    waiting_for_room_ = true;
    changed_.wait(lock, [&] { return stopping_ || h2_queue_.size() <= low_water(); });
    waiting_for_room_ = false;
  }
  h2_queue_.push_back(std::move(job));
  auto starts = pump_h2();
  lock.unlock();
  start_h2(std::move(starts), nullptr);
}

std::vector<HttpOutput::H2Start> HttpOutput::pump_h2() {
  std::vector<H2Start> starts;
  while (!h2_queue_.empty() && h2_in_flight_ < config_.workers && !stopping_) {
    H2Slot* slot = nullptr;
    // First fit: streams pile onto the oldest connections, so a few carry them all.
    for (H2Slot& s : h2_slots_) {
      if (s.connection->usable() && s.active < s.connection->stream_limit()) {
        slot = &s;
        break;
      }
    }
    if (slot == nullptr) {
      if (h2_slots_.size() >= config_.workers) break;
      auto executor = config_.io_threads > 1 ? asio::any_io_executor(asio::make_strand(io_))
                                             : asio::any_io_executor(io_.get_executor());
      H2StreamOwner& owner = *this;
      h2_slots_.push_back(
          H2Slot{std::make_shared<H2Connection>(*this, std::move(executor), owner, config_.h2_max_streams), 0});
      slot = &h2_slots_.back();
    }
    ++slot->active;
    ++h2_in_flight_;
    starts.push_back(H2Start{slot->connection, std::move(h2_queue_.front())});
    h2_queue_.pop_front();
  }
  update_in_flight_gauge();
  queued_gauge_->set(static_cast<std::int64_t>(queue_.size() + h2_queue_.size()));
  return starts;
}

void HttpOutput::start_h2(std::vector<H2Start> starts, H2Connection* current) {
  for (H2Start& start : starts) {
    sent_->add();
    if (start.connection.get() == current) {
      start.connection->submit(std::move(start.job));  // already on its executor
      continue;
    }
    auto executor = start.connection->executor();  // before the connection moves into the handler
    asio::post(executor, [connection = std::move(start.connection), job = std::move(start.job)]() mutable {
                 connection->submit(std::move(job));
               });
  }
}

std::shared_ptr<ReplayConnection> HttpOutput::take_h1_connection() {
  if (!idle_.empty()) {
    auto connection = std::move(idle_.back());
    idle_.pop_back();
    return connection;
  }
  if (connections_.size() < config_.workers) {
    auto connection = std::make_shared<ReplayConnection>(*this, io_, config_.io_threads > 1);
    connections_.push_back(connection);
    return connection;
  }
  return nullptr;
}

void HttpOutput::h2_connected(H2Connection&) {}

void HttpOutput::h2_streams_done(H2Connection& connection, const std::vector<std::shared_ptr<ReplaySession>>& sessions) {
  const std::size_t n = sessions.size();
  std::unique_lock lock(mutex_);
  for (H2Slot& slot : h2_slots_) {
    if (slot.connection.get() == &connection) {
      slot.active -= std::min(slot.active, n);
      break;
    }
  }
  h2_in_flight_ -= n;
  finished_ += n;
  auto starts = pump_h2();
  bool wake = (waiting_for_room_ && h2_queue_.size() <= low_water()) || h2_in_flight_ + in_flight_ == 0;
  lock.unlock();
  if (wake) changed_.notify_all();
  start_h2(std::move(starts), &connection);
}

void HttpOutput::h2_give_back(H2Connection& connection, std::vector<ReplayJob> jobs, bool no_h2) {
  std::unique_lock lock(mutex_);
  for (H2Slot& slot : h2_slots_) {
    if (slot.connection.get() == &connection) {
      slot.active -= std::min(slot.active, jobs.size());
      break;
    }
  }
  h2_in_flight_ -= jobs.size();
  if (stopping_) {
    lock.unlock();
    context().drop("shutdown", jobs.size());
    changed_.notify_all();
    return;
  }
  if (!no_h2) {
    // Not processed by the target: first in line again, on another connection.
    for (auto it = jobs.rbegin(); it != jobs.rend(); ++it) h2_queue_.push_front(std::move(*it));
    auto starts = pump_h2();
    lock.unlock();
    start_h2(std::move(starts), nullptr);
    return;
  }
  // The target speaks HTTP/1.1 only: these and the queued requests go out over it. They were
  // already admitted, so they queue beyond queue_size rather than being dropped.
  for (ReplayJob& job : h2_queue_) jobs.push_back(std::move(job));
  h2_queue_.clear();
  std::vector<std::pair<std::shared_ptr<ReplayConnection>, ReplayJob>> starts;
  for (ReplayJob& job : jobs) {
    if (auto h1 = take_h1_connection()) {
      ++in_flight_;
      starts.emplace_back(std::move(h1), std::move(job));
    } else {
      queue_.push_back(std::move(job));
    }
  }
  update_in_flight_gauge();
  queued_gauge_->set(static_cast<std::int64_t>(queue_.size()));
  lock.unlock();
  for (auto& [h1, job] : starts) {  // counted in `sent` when first handed to HTTP/2
    auto executor = h1->executor();
    asio::post(executor, [h1 = std::move(h1), job = std::move(job)]() mutable { h1->run(std::move(job)); });
  }
}

void HttpOutput::h2_closed(H2Connection& connection) {
  std::unique_lock lock(mutex_);
  for (auto it = h2_slots_.begin(); it != h2_slots_.end(); ++it) {
    if (it->connection.get() == &connection) {
      h2_slots_.erase(it);
      break;
    }
  }
  // Requests waiting for a stream may need a new connection now.
  auto starts = pump_h2();
  lock.unlock();
  start_h2(std::move(starts), nullptr);
}

}  // namespace doppel::plugins
