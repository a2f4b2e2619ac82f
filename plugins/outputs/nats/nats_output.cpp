#include "nats_output.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>

namespace doppel::plugins {

namespace {

constexpr const char* kMsgIdHeader = "Nats-Msg-Id";

// NATS subject matching: `*` matches one token, `>` the rest.
bool subject_covers(std::string_view pattern, std::string_view subject) {
  while (true) {
    auto pdot = pattern.find('.');
    auto sdot = subject.find('.');
    auto ptoken = pattern.substr(0, pdot);
    auto stoken = subject.substr(0, sdot);
    if (ptoken == ">") return !subject.empty();
    if (ptoken != "*" && ptoken != stoken) return false;
    if (pdot == std::string_view::npos || sdot == std::string_view::npos) return pdot == sdot;
    pattern.remove_prefix(pdot + 1);
    subject.remove_prefix(sdot + 1);
  }
}

std::string age_text(std::int64_t ns) { return ns == 0 ? "unlimited" : format_duration(std::chrono::nanoseconds(ns)); }
std::string bytes_text(std::int64_t bytes) {
  return bytes < 0 ? "unlimited" : format_size(static_cast<std::uint64_t>(bytes));
}

}  // namespace

std::string stream_differences(const jsStreamConfig& existing, const NatsOutputConfig& wanted) {
  std::string out;
  auto add = [&](const std::string& what) { out += (out.empty() ? "" : ", ") + what; };
  bool covered = false;
  for (int i = 0; i < existing.SubjectsLen; ++i)
    if (subject_covers(existing.Subjects[i], wanted.subject)) covered = true;
  if (!covered) add("its subjects do not include \"" + wanted.subject + "\"");
  if (!wanted.stream.create) return out;  // an existing stream we were not asked to shape
  if (existing.Replicas != wanted.stream.replicas)
    add("replicas = " + std::to_string(existing.Replicas) + " (pipeline: " + std::to_string(wanted.stream.replicas) +
        ")");
  if (existing.MaxAge != wanted.stream.max_age.count())
    add("max_age = " + age_text(existing.MaxAge) + " (pipeline: " + age_text(wanted.stream.max_age.count()) + ")");
  if (existing.MaxBytes != wanted.stream.max_bytes)
    add("max_bytes = " + bytes_text(existing.MaxBytes) + " (pipeline: " + bytes_text(wanted.stream.max_bytes) + ")");
  if (existing.Duplicates != wanted.stream.duplicate_window.count())
    add("duplicate_window = " + age_text(existing.Duplicates) +
        " (pipeline: " + age_text(wanted.stream.duplicate_window.count()) + ")");
  return out;
}

NatsOutput::NatsOutput(NatsOutputConfig config) : config_(std::move(config)) {}

NatsOutput::~NatsOutput() {
  if (started_ && !stopping_) stop();
}

bool NatsOutput::connected() const {
  return connection_ && natsConnection_Status(connection_) == NATS_CONN_STATUS_CONNECTED;
}

void NatsOutput::on_connected(natsConnection*, void* self) {
  auto* output = static_cast<NatsOutput*>(self);
  output->publisher_wake_.notify_all();
  output->changed_.notify_all();
}

void NatsOutput::on_ack(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* self) {
  static_cast<NatsOutput*>(self)->acknowledged(msg, ack, error);
  natsMsg_Destroy(msg);
}

void NatsOutput::acknowledged(natsMsg* msg, jsPubAck* ack, jsPubAckErr* error) {
  const char* id = nullptr;
  if (natsMsgHeader_Get(msg, kMsgIdHeader, &id) != NATS_OK || id == nullptr) return;
  std::shared_ptr<const void> released;  // the records' lease, let go after the lock (it may ack a source)
  std::unique_lock lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.in_flight) return;
  --in_flight_;
  if (ack) {
    buffered_bytes_ -= it->second.body.size();
    released = std::move(it->second.lease);
    entries_.erase(it);
    ++acked_total_;
    published_->add();
    if (ack->Duplicate) duplicates_->add();
  } else {
    // Timed out (leader election, lost connection) or refused: publish again with the same
    // id; if the first copy was stored after all, the stream drops the second as a duplicate.
    it->second.in_flight = false;
    ready_.push_back(it->first);
    republished_->add();
    retry_after_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    static std::atomic<std::int64_t> last_log{0};
    auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    if (now - last_log.load() > std::chrono::nanoseconds(std::chrono::seconds(5)).count()) {
      last_log = now;
      context().log().warn("publish to \"{}\" not acknowledged ({}{}{}); publishing again", config_.subject,
                           natsStatus_GetText(error ? error->Err : NATS_ERR), error && error->ErrText ? ": " : "",
                           error && error->ErrText ? error->ErrText : "");
    }
  }
  buffered_->set(static_cast<std::int64_t>(entries_.size()));
  in_flight_gauge_->set(static_cast<std::int64_t>(in_flight_));
  // Wake only who waits for this: one wake-up per acknowledgement is a context switch per
  // message. The publisher, when max_pending stopped it, once half of it is free again.
  bool wake_publisher = publisher_waiting_ && !ready_.empty() && in_flight_ <= config_.max_pending / 2;
  bool wake_waiters = changed_waiters_ > 0;
  lock.unlock();
  if (wake_publisher) publisher_wake_.notify_one();
  if (wake_waiters) changed_.notify_all();
}

std::string NatsOutput::ensure_stream() {
  const auto& s = config_.stream;
  // Creating a replicated stream takes a round of the cluster's consensus: allow more time
  // than a publish acknowledgement.
  jsOptions api;
  jsOptions_Init(&api);
  api.Wait = std::max<std::int64_t>(nats::to_ms(config_.ack_timeout), 10000);
  constexpr int kAttempts = 5;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    jsStreamInfo* info = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus status = js_GetStreamInfo(&info, js_, s.name.c_str(), &api, &code);
    if (status == NATS_OK) {
      std::string diff = stream_differences(*info->Config, config_);
      jsStreamInfo_Destroy(info);
      if (diff.empty()) return {};
      return "stream \"" + s.name + "\" exists with other settings: " + diff +
             "; align the pipeline with it, change the stream (nats stream edit) or use another `stream` name";
    }
    if (status != NATS_NOT_FOUND && attempt + 1 < kAttempts) {  // a busy or electing cluster: ask again
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      continue;
    }
    if (status != NATS_NOT_FOUND)
      return "cannot look up stream \"" + s.name + "\": " + natsStatus_GetText(status) + " (" +
             nats_GetLastError(nullptr) + ")";
    if (!s.create)
      return "stream \"" + s.name + "\" does not exist; create it (nats stream add) or set create_stream = true";
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char* subjects[] = {config_.subject.c_str()};
    sc.Name = s.name.c_str();
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Replicas = s.replicas;
    sc.MaxAge = s.max_age.count();
    sc.MaxBytes = s.max_bytes;
    sc.Duplicates = s.duplicate_window.count();
    sc.Storage = s.file_storage ? js_FileStorage : js_MemoryStorage;
    status = js_AddStream(&info, js_, &sc, &api, &code);
    if (status == NATS_OK) {
      jsStreamInfo_Destroy(info);
      context().log().info("created stream \"{}\" on \"{}\" (replicas {})", s.name, config_.subject, s.replicas);
      return {};
    }
    // Another agent may be creating it at the same moment (name in use, or a timeout while the
    // cluster agrees): look again.
    if (attempt + 1 < kAttempts) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      continue;
    }
    return "cannot create stream \"" + s.name + "\": " + natsStatus_GetText(status) + " (" +
             nats_GetLastError(nullptr) + ")";
  }
  return {};
}

void NatsOutput::start(StageContext& context) {
  Stage::start(context);
  started_ = true;
  published_ = &context.counter("published");
  duplicates_ = &context.counter("duplicates");
  republished_ = &context.counter("republished");
  paired_ = &context.counter("paired");
  unpaired_requests_ = &context.counter("unpaired_requests");
  unpaired_responses_ = &context.counter("unpaired_responses");
  buffered_ = &context.gauge("buffered");
  in_flight_gauge_ = &context.gauge("in_flight");
  held_gauge_ = &context.gauge("held");
  held_table_gauge_ = &context.gauge("table.held_requests");

  auto options = nats::make_nats_options(config_.connection, &NatsOutput::on_connected, this);
  natsStatus status = natsConnection_Connect(&connection_, options.get());
  bool up = status == NATS_OK;
  if (status == NATS_NOT_YET_CONNECTED) {
    context.log().warn("NATS servers {} unreachable; buffering up to {} messages and reconnecting",
                       nats::servers_text(config_.connection), config_.buffer_messages);
  } else if (!up) {
    std::string error = std::string("cannot connect to NATS servers ") + nats::servers_text(config_.connection) +
                        ": " + natsStatus_GetText(status) + " (" + nats_GetLastError(nullptr) + ")";
    natsConnection_Destroy(connection_);
    connection_ = nullptr;
    stopping_ = true;
    throw std::runtime_error(error);
  }
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = nats::to_ms(config_.ack_timeout);
  js_options.PublishAsync.AckHandler = &NatsOutput::on_ack;
  js_options.PublishAsync.AckHandlerClosure = this;
  if (natsConnection_JetStream(&js_, connection_, &js_options) != NATS_OK) {
    natsConnection_Destroy(connection_);
    connection_ = nullptr;
    stopping_ = true;
    throw std::runtime_error("cannot create a JetStream context");
  }
  if (up) {
    // Reachable now: a stream that is missing or shaped otherwise is a configuration error.
    std::string problem = ensure_stream();
    if (!problem.empty()) {
      jsCtx_Destroy(js_);
      natsConnection_Destroy(connection_);
      js_ = nullptr;
      connection_ = nullptr;
      stopping_ = true;
      throw std::runtime_error(problem);
    }
    stream_checked_ = true;
  }
  publisher_ = std::jthread([this](std::stop_token stop) { publisher_loop(stop); });
}

void NatsOutput::enqueue(std::unique_lock<std::mutex>& lock, std::string msg_id, std::string body,
                         std::shared_ptr<const void> lease) {
  if (entries_.count(msg_id)) {
    duplicates_->add();  // the same record again while its first copy is unacknowledged
    return;
  }
  auto full = [&] {
    return !entries_.empty() &&
           (entries_.size() >= config_.buffer_messages || buffered_bytes_ + body.size() > config_.buffer_bytes);
  };
  while (full()) {
    if (!config_.wait_when_full) {
      context().drop("buffer_full");
      return;
    }
    if (stopping_ || context().stopping()) {
      context().drop("shutdown");
      return;
    }
    // Back-pressure: the runtime's queue in front of this stage fills, and a file input waits.
    ++changed_waiters_;
    changed_.wait_for(lock, std::chrono::milliseconds(100));
    --changed_waiters_;
  }
  buffered_bytes_ += body.size();
  auto [it, inserted] = entries_.emplace(std::move(msg_id), Entry{std::move(body), false, std::move(lease)});
  ready_.push_back(it->first);
  buffered_->set(static_cast<std::int64_t>(entries_.size()));
  if (publisher_waiting_) publisher_wake_.notify_one();
}

void NatsOutput::publish_alone(std::unique_lock<std::mutex>& lock, const MessagePtr& message, const char* kinds) {
  enqueue(lock, std::string(kinds) + ":" + message->id, nats::join_records({message.get()}), message->lease);
}

void NatsOutput::release_held(std::unique_lock<std::mutex>& lock, bool all) {
  auto now = std::chrono::steady_clock::now();
  while (!held_order_.empty()) {
    auto it = held_.find(held_order_.front());
    if (it == held_.end()) {  // paired already
      held_order_.pop_front();
      continue;
    }
    if (!all && it->second.deadline > now && held_.size() <= config_.pair_capacity) break;
    MessagePtr request = std::move(it->second.request);
    held_.erase(it);
    held_order_.pop_front();
    unpaired_requests_->add();
    publish_alone(lock, request, "1");
  }
  held_gauge_->set(static_cast<std::int64_t>(held_.size()));
  held_table_gauge_->set(static_cast<std::int64_t>(held_.size()));
}

void NatsOutput::process(const MessagePtr& message) {
  std::unique_lock lock(mutex_);
  if (config_.pair && message->kind == Kind::request) {
    auto [it, inserted] = held_.try_emplace(message->id);
    if (!inserted) {  // the same id again: the earlier one will not be paired now
      unpaired_requests_->add();
      auto earlier = std::move(it->second.request);
      it->second = Held{message, std::chrono::steady_clock::now() + config_.pair_timeout};
      publish_alone(lock, earlier, "1");
    } else {
      it->second = Held{message, std::chrono::steady_clock::now() + config_.pair_timeout};
      held_order_.push_back(message->id);
      // Paired ids leave held_ but stay in held_order_ until they reach its front, which a
      // request still waiting holds for up to pair_timeout: at a high rate that is far more
      // ids than pair_capacity. Dropping them now and then keeps held_order_ within bounds.
      if (held_order_.size() > 2 * config_.pair_capacity + 64)
        std::erase_if(held_order_, [&](const std::string& id) { return !held_.contains(id); });
    }
    if (held_.size() > config_.pair_capacity) release_held(lock, false);
    held_gauge_->set(static_cast<std::int64_t>(held_.size()));
    held_table_gauge_->set(static_cast<std::int64_t>(held_.size()));
    return;
  }
  if (config_.pair && message->kind == Kind::response) {
    auto it = held_.find(message->id);
    if (it != held_.end()) {
      MessagePtr request = std::move(it->second.request);
      held_.erase(it);
      held_gauge_->set(static_cast<std::int64_t>(held_.size()));
      held_table_gauge_->set(static_cast<std::int64_t>(held_.size()));
      paired_->add();
      enqueue(lock, "12:" + message->id, nats::join_records({request.get(), message.get()}),
              join_leases({request->lease, message->lease}));
      return;
    }
    unpaired_responses_->add();
  }
  char kinds[2] = {static_cast<char>('0' + static_cast<int>(message->kind)), 0};
  publish_alone(lock, message, kinds);
}

void NatsOutput::publisher_loop(std::stop_token stop) {
  std::unique_lock lock(mutex_);
  const auto ack_wait_ms = nats::to_ms(config_.ack_timeout);
  while (!stop.stop_requested()) {
    release_held(lock, false);
    if (!stream_checked_ && connected()) {
      lock.unlock();
      std::string problem = ensure_stream();
      lock.lock();
      stream_checked_ = true;
      if (!problem.empty()) context().log().error("{}", problem);
    }
    auto now = std::chrono::steady_clock::now();
    if (ready_.empty() || in_flight_ >= config_.max_pending || now < retry_after_ || !connected()) {
      publisher_waiting_ = true;
      publisher_wake_.wait_for(lock, std::chrono::milliseconds(20));
      publisher_waiting_ = false;
      continue;
    }
    std::string id = std::move(ready_.front());
    ready_.pop_front();
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.in_flight) continue;
    natsMsg* msg = nullptr;
    natsStatus status = natsMsg_Create(&msg, config_.subject.c_str(), nullptr, it->second.body.data(),
                                       static_cast<int>(it->second.body.size()));
    if (status == NATS_OK) status = natsMsgHeader_Set(msg, kMsgIdHeader, id.c_str());
    it->second.in_flight = true;
    ++in_flight_;
    in_flight_gauge_->set(static_cast<std::int64_t>(in_flight_));
    lock.unlock();
    if (status == NATS_OK) {
      jsPubOptions options;
      jsPubOptions_Init(&options);
      options.MaxWait = ack_wait_ms;
      status = js_PublishMsgAsync(js_, &msg, &options);
    }
    natsMsg_Destroy(msg);  // a no-op when the library took the message
    lock.lock();
    if (status != NATS_OK) {
      auto again = entries_.find(id);
      if (again != entries_.end() && again->second.in_flight) {
        again->second.in_flight = false;
        --in_flight_;
        ready_.push_front(id);
      }
      retry_after_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    }
  }
}

std::size_t NatsOutput::pending() const {
  std::lock_guard lock(mutex_);
  return entries_.size() + held_.size();
}

void NatsOutput::flush() {
  // Requests still waiting for a response go out alone; then wait for the stream's
  // acknowledgements while they keep coming (the runtime's drain_timeout bounds the rest).
  std::unique_lock lock(mutex_);
  release_held(lock, true);
  publisher_wake_.notify_one();
  const auto window = config_.ack_timeout * 2 + std::chrono::seconds(1);
  std::uint64_t seen = acked_total_;
  auto deadline = std::chrono::steady_clock::now() + window;
  while (!entries_.empty() && !stopping_) {
    ++changed_waiters_;
    changed_.wait_for(lock, std::chrono::milliseconds(50));
    --changed_waiters_;
    if (acked_total_ != seen) {
      seen = acked_total_;
      deadline = std::chrono::steady_clock::now() + window;
    } else if (std::chrono::steady_clock::now() > deadline) {
      context().log().warn("{} message(s) not acknowledged by the stream after {}; still retrying", entries_.size(),
                           format_duration(window));
      return;
    }
  }
}

void NatsOutput::stop() {
  std::unique_lock lock(mutex_);
  if (stopping_) return;
  stopping_ = true;
  lock.unlock();
  changed_.notify_all();
  publisher_wake_.notify_all();
  if (publisher_.joinable()) {
    publisher_.request_stop();
    publisher_.join();
  }
  if (connection_) natsConnection_Close(connection_);
  if (js_) jsCtx_Destroy(js_);
  if (connection_) natsConnection_Destroy(connection_);
  js_ = nullptr;
  connection_ = nullptr;
  lock.lock();
  std::size_t left = entries_.size() + held_.size();
  auto entries = std::move(entries_);  // their leases are let go after the lock
  auto held = std::move(held_);
  entries_.clear();
  held_.clear();
  lock.unlock();
  entries.clear();
  held.clear();
  if (left > 0 && started_) {
    context().log().error("{} message(s) were not confirmed by the stream and are dropped", left);
    context().drop("unconfirmed", left);
  }
}

}  // namespace doppel::plugins
