#include "middleware_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <spdlog/spdlog.h>
#include <stdexcept>

#include "doppel/child_process.hpp"
#include "hex_lines.hpp"

namespace doppel::plugins {

namespace {
constexpr std::size_t kReadChunk = 1 << 20;
}  // namespace

ProcessMiddleware::ProcessMiddleware(ProcessMiddlewareConfig config)
    : config_(std::move(config)), command_text_(command_text(config_.argv)) {}

ProcessMiddleware::~ProcessMiddleware() {
  if (supervisor_.joinable()) stop();
}

void ProcessMiddleware::start(StageContext& context) {
  Stage::start(context);
  sent_counter_ = &context.counter("sent");
  returned_counter_ = &context.counter("returned");
  restarts_ = &context.counter("restarts");
  leases_gauge_ = &context.gauge("table.leases");  // before the program runs: what it writes takes leases
  Child child = spawn();
  {
    std::lock_guard lock(mutex_);
    child_ = child;
    alive_ = true;
    last_activity_ = std::chrono::steady_clock::now();
  }
  context.log().info("middleware `{}` started (pid {})", command_text_, child.pid);
  supervisor_ = std::thread([this] { supervise(); });

  held_counter_ = &context.counter("held");
  held_expired_ = &context.counter("held_expired");
  held_overflow_ = &context.counter("held_overflow");
  held_flushed_ = &context.counter("held_flushed");
  holding_ = &context.gauge("holding");
  ids_forgotten_ = &context.counter("ids_forgotten");
  ids_gauge_ = &context.gauge("table.ids");
  KindSet arriving = context.input_kinds() & KindSet::http();
  using Order = ProcessMiddlewareConfig::Order;
  bool hold = config_.order == Order::per_id ||
              (config_.order == Order::automatic && arriving.contains(Kind::response));
  if (!hold) return;
  KindSet expected = config_.order == Order::per_id ? KindSet::http() : arriving;
  order_.emplace(ExchangeOrderConfig{expected, config_.hold_max, config_.hold_timeout});
  expiry_ = std::thread([this] { release_expired(); });
  context.log().info("middleware `{}` gets each id's messages in the order {} (one that comes early is held, up to "
                     "{}ms and {} messages)",
                     command_text_, expected.to_string(),
                     std::chrono::duration_cast<std::chrono::milliseconds>(config_.hold_timeout).count(),
                     config_.hold_max);
}

ProcessMiddleware::Child ProcessMiddleware::spawn() {
  try {
    return spawn_child(config_.argv);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot start middleware `" + command_text_ + "`: " + e.what());
  }
}

void ProcessMiddleware::supervise() {
  auto backoff = config_.backoff;
  for (;;) {
    Child child;
    {
      std::lock_guard lock(mutex_);
      child = child_;
    }
    auto started = std::chrono::steady_clock::now();
    std::thread stderr_reader([this, fd = child.stderr_fd, pid = child.pid] { forward_stderr(fd, pid); });
    read_stdout(child.stdout_fd);  // until the program closes its stdout (usually: exits)
    int status = wait_child(child.pid);
    stderr_reader.join();
    ::close(child.stdout_fd);
    ::close(child.stderr_fd);
    {
      std::lock_guard write_lock(write_mutex_);
      std::lock_guard lock(mutex_);
      ::close(child_.stdin_fd);
      child_.stdin_fd = -1;
      alive_ = false;
    }
    changed_.notify_all();

    std::unique_lock lock(mutex_);
    if (stopping_) {
      lock.unlock();
      context().log().info("middleware `{}` (pid {}) {}", command_text_, child.pid, describe_exit(status));
      break;
    }
    std::uint64_t lost = sent_ > returned_ + written_off_ ? sent_ - returned_ - written_off_ : 0;
    written_off_ += lost;
    std::vector<std::shared_ptr<const void>> released;
    release_leases(true, released);
    lock.unlock();
    released.clear();
    if (lost > 0) context().drop("lost_in_restart", lost);
    if (!config_.restart) {
      context().log().error("middleware `{}` (pid {}) {}; {} message(s) in flight lost; restart = \"never\": "
                            "messages sent to it from now on are dropped (middleware_exited)",
                            command_text_, child.pid, describe_exit(status), lost);
      break;
    }
    if (std::chrono::steady_clock::now() - started > std::chrono::seconds(10)) backoff = config_.backoff;
    context().log().warn("middleware `{}` (pid {}) {}; {} message(s) in flight lost; restarting in {}ms",
                         command_text_, child.pid, describe_exit(status), lost,
                         std::chrono::duration_cast<std::chrono::milliseconds>(backoff).count());
    lock.lock();
    if (changed_.wait_for(lock, backoff, [&] { return stopping_; })) break;
    lock.unlock();
    backoff = std::min(backoff * 2, config_.backoff_max);
    try {
      Child next = spawn();
      lock.lock();
      child_ = next;
      alive_ = true;
      last_activity_ = std::chrono::steady_clock::now();
      lock.unlock();
      changed_.notify_all();
      restarts_->add();
      context().log().info("middleware `{}` restarted (pid {})", command_text_, next.pid);
    } catch (const std::exception& e) {
      context().log().error("{}", e.what());
      break;
    }
  }
  std::lock_guard lock(mutex_);
  supervisor_done_ = true;
  changed_.notify_all();
}

void ProcessMiddleware::read_stdout(int fd) {
  LineSplitter lines(config_.max_line);
  std::vector<char> chunk(kReadChunk);
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, 500);
    if (ready == 0) {
      write_off_unreturned(false);
      continue;
    }
    if (ready < 0 && errno == EINTR) continue;
    ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    lines.feed(
        std::string_view(chunk.data(), static_cast<std::size_t>(n)), [&](std::string_view line) { handle_line(line); },
        [&] {
          context().fail("line_too_long");
          context().log().warn("middleware `{}` wrote a line longer than max_line ({} bytes); skipped", command_text_,
                               config_.max_line);
        });
  }
}

void ProcessMiddleware::handle_line(std::string_view line) {
  if (line.empty() || line == "\r") return;
  std::string error;
  auto message = decode_hex_line(line, error);
  std::vector<std::shared_ptr<const void>> released;  // destroyed after the lock below
  {
    std::lock_guard lock(mutex_);
    last_activity_ = std::chrono::steady_clock::now();
    if (message) {
      ++returned_;
      message->lease = take_lease(*message);
      release_leases(false, released);
    }
  }
  if (!message) {
    context().fail("bad_line");
    context().log().warn("middleware `{}` wrote a line that is not a message ({}): {:.80}", command_text_, error,
                         line);
    return;
  }
  returned_counter_->add();
  context().emit(share(std::move(*message)));
}

void ProcessMiddleware::forward_stderr(int fd, pid_t pid) {
  read_lines(fd, [&](std::string_view line) { context().log().info("[{} {}] {}", config_.argv[0], pid, line); });
}

void ProcessMiddleware::process(const MessagePtr& message) {
  if (!order_) {
    send(message);
    return;
  }
  std::vector<MessagePtr> ready;
  std::lock_guard lock(order_mutex_);
  bool was_empty = order_->held() == 0;
  order_->accept(message, std::chrono::steady_clock::now(), ready);
  send_released(ready);
  // Later holds expire later: the expiry thread needs waking only when it waits for nothing.
  if (was_empty && order_->held() > 0) order_changed_.notify_one();
}

void ProcessMiddleware::send_released(std::vector<MessagePtr>& ready) {
  for (const auto& m : ready) send(m);
  ready.clear();
  const auto& counts = order_->counts();
  held_counter_->add(counts.held - reported_.held);
  held_expired_->add(counts.expired - reported_.expired);
  held_overflow_->add(counts.overflow - reported_.overflow);
  held_flushed_->add(counts.flushed - reported_.flushed);
  ids_forgotten_->add(counts.forgotten - reported_.forgotten);
  reported_ = counts;
  held_now_.store(order_->held());
  holding_->set(static_cast<std::int64_t>(order_->held()));
  ids_gauge_->set(static_cast<std::int64_t>(order_->remembered_ids()));
}

void ProcessMiddleware::release_expired() {
  std::unique_lock lock(order_mutex_);
  while (!order_stopping_) {
    if (auto deadline = order_->next_deadline()) order_changed_.wait_until(lock, *deadline);
    else order_changed_.wait(lock);
    if (order_stopping_) break;
    std::vector<MessagePtr> ready;
    order_->expire(std::chrono::steady_clock::now(), ready);
    send_released(ready);
  }
}

void ProcessMiddleware::stop_holding() {
  if (!expiry_.joinable()) return;
  std::vector<MessagePtr> left;
  {
    std::lock_guard lock(order_mutex_);
    order_stopping_ = true;
    order_->release_all(left);  // flush() releases everything; this is only after a hard stop
    held_now_.store(0);
  }
  order_changed_.notify_all();
  expiry_.join();
  if (!left.empty()) context().drop("shutdown", left.size());
}

void ProcessMiddleware::send(const MessagePtr& message) {
  std::string line;
  append_hex_line(line, *message);
  std::unique_lock write_lock(write_mutex_);
  int fd = -1;
  {
    std::unique_lock lock(mutex_);
    if (!alive_ && config_.restart && !stopping_ && !supervisor_done_) {
      // Restarting: wait for the new program (bounded by the backoff ceiling and a spawn).
      write_lock.unlock();
      changed_.wait_for(lock, config_.backoff_max + std::chrono::seconds(5),
                        [&] { return alive_ || stopping_ || supervisor_done_; });
      lock.unlock();
      write_lock.lock();
      lock.lock();
    }
    if (!alive_) {
      lock.unlock();
      context().drop(stopping_ ? "shutdown" : "middleware_exited");
      return;
    }
    fd = child_.stdin_fd;
    ++sent_;
    last_activity_ = std::chrono::steady_clock::now();
    hold_lease(*message, last_activity_);
  }
  sent_counter_->add();
  send_all(fd, line);  // when the program is gone, the supervisor counts this message as lost
}

void ProcessMiddleware::write_off_unreturned(bool force) {
  std::vector<std::shared_ptr<const void>> released;  // destroyed after the lock below
  std::unique_lock lock(mutex_);
  if (!force && std::chrono::steady_clock::now() - last_activity_ < config_.return_timeout) return;
  release_leases(true, released);  // quiet for return_timeout: whatever is missing was dropped
  std::uint64_t missing = sent_ > returned_ + written_off_ ? sent_ - returned_ - written_off_ : 0;
  if (missing == 0) return;
  written_off_ += missing;
  lock.unlock();
  context().drop("not_returned", missing);
}

void ProcessMiddleware::hold_lease(const Message& message, std::chrono::steady_clock::time_point now) {
  if (message.lease.use_count() == 0) return;  // (a lease may own a null pointer)
  leases_[message.id].push_back(HeldLease{message.kind, sent_, now, message.lease});
  lease_order_.emplace_back(now, sent_, message.id);
  leases_gauge_->set(static_cast<std::int64_t>(++leases_held_));
}

std::shared_ptr<const void> ProcessMiddleware::take_lease(const Message& returned) {
  auto it = leases_.find(returned.id);
  if (it == leases_.end()) return nullptr;  // a new message the program made up
  auto& held = it->second;
  auto match = std::find_if(held.begin(), held.end(), [&](const HeldLease& h) { return h.kind == returned.kind; });
  if (match == held.end()) match = held.begin();  // the program changed its kind
  std::shared_ptr<const void> lease = std::move(match->lease);
  answered_up_to_ = std::max(answered_up_to_, match->sent_at);
  held.erase(match);
  if (held.empty()) leases_.erase(it);
  leases_gauge_->set(static_cast<std::int64_t>(--leases_held_));
  return lease;
}

void ProcessMiddleware::release_leases(bool all, std::vector<std::shared_ptr<const void>>& released) {
  // A program may drop messages on purpose (a filter) while traffic keeps flowing. One it has
  // not written back although it answered a message sent return_timeout later is taken as
  // dropped; a slow program with a backlog has not answered later ones, so it keeps its leases.
  while (!lease_order_.empty()) {
    auto& [sent_at, number, id] = lease_order_.front();
    if (!all && answered_up_to_ - sent_at < config_.return_timeout) break;
    auto it = leases_.find(id);
    if (it != leases_.end()) {
      auto& held = it->second;
      auto match = std::find_if(held.begin(), held.end(), [&](const HeldLease& h) { return h.number == number; });
      if (match != held.end()) {
        released.push_back(std::move(match->lease));
        held.erase(match);
        leases_gauge_->set(static_cast<std::int64_t>(--leases_held_));
      }
      if (held.empty()) leases_.erase(it);
    }
    lease_order_.pop_front();
  }
}

std::size_t ProcessMiddleware::pending() const {
  std::size_t held = held_now_.load();
  std::lock_guard lock(mutex_);
  if (!alive_ || std::chrono::steady_clock::now() - last_activity_ >= config_.return_timeout) return held;
  return held + (sent_ > returned_ + written_off_ ? static_cast<std::size_t>(sent_ - returned_ - written_off_) : 0);
}

void ProcessMiddleware::flush() {
  if (order_) {  // draining: what held messages wait for will not come any more
    std::vector<MessagePtr> ready;
    std::lock_guard lock(order_mutex_);
    order_->release_all(ready);
    send_released(ready);
  }
  // Waits until everything sent was written back, or the program was quiet for
  // return_timeout; what is still missing then was dropped by the program.
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (sent_ <= returned_ + written_off_ || !alive_) break;
      if (std::chrono::steady_clock::now() - last_activity_ >= config_.return_timeout) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  write_off_unreturned(true);
}

void ProcessMiddleware::stop() {
  if (!supervisor_.joinable()) return;
  pid_t pid;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    pid = alive_ ? child_.pid : -1;
    // EOF on stdin: a well-behaved middleware finishes and exits.
    if (child_.stdin_fd >= 0) ::shutdown(child_.stdin_fd, SHUT_WR);
  }
  changed_.notify_all();
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, std::chrono::seconds(3), [&] { return supervisor_done_; }) && pid > 0) {
    context().log().warn("middleware `{}` (pid {}) did not exit after end of input; terminating it", command_text_, pid);
    ::kill(pid, SIGTERM);
    if (!changed_.wait_for(lock, std::chrono::seconds(2), [&] { return supervisor_done_; })) ::kill(pid, SIGKILL);
  }
  lock.unlock();
  supervisor_.join();
  write_off_unreturned(true);
  stop_holding();
}

}  // namespace doppel::plugins
