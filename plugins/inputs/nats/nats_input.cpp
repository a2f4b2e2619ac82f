#include "nats_input.hpp"

#include <spdlog/spdlog.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <unordered_map>

#include "doppel/gor.hpp"

namespace doppel::plugins {

using Clock = std::chrono::steady_clock;

std::optional<std::int64_t> parse_timestamp(std::string_view text) {
  // YYYY-MM-DDTHH:MM[:SS[.fraction]] then Z or +HH:MM / -HH:MM.
  std::string s(text);
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, used = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d%n", &year, &month, &day, &hour, &minute, &used) != 5)
    return std::nullopt;
  std::string_view rest = std::string_view(s).substr(static_cast<std::size_t>(used));
  std::int64_t second = 0, fraction_ns = 0;
  if (!rest.empty() && rest[0] == ':') {
    if (rest.size() < 3 || !std::isdigit(static_cast<unsigned char>(rest[1])) ||
        !std::isdigit(static_cast<unsigned char>(rest[2])))
      return std::nullopt;
    second = (rest[1] - '0') * 10 + (rest[2] - '0');
    rest.remove_prefix(3);
    if (!rest.empty() && rest[0] == '.') {
      rest.remove_prefix(1);
      std::int64_t scale = 100000000;
      std::size_t digits = 0;
      while (!rest.empty() && std::isdigit(static_cast<unsigned char>(rest[0]))) {
        fraction_ns += (rest[0] - '0') * scale;
        scale /= 10;
        rest.remove_prefix(1);
        ++digits;
      }
      if (digits == 0) return std::nullopt;
    }
  }
  std::int64_t offset_s = 0;
  if (rest == "Z" || rest == "z") {
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    int oh = 0, om = 0;
    if (std::sscanf(std::string(rest.substr(1)).c_str(), "%2d:%2d", &oh, &om) != 2) return std::nullopt;
    offset_s = (oh * 3600 + om * 60) * (rest[0] == '+' ? 1 : -1);
  } else {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = static_cast<int>(second);
  std::int64_t epoch = static_cast<std::int64_t>(timegm(&tm)) - offset_s;
  return epoch * 1000000000 + fraction_ns;
}

Clock::time_point NatsPacer::due(std::int64_t timestamp_ns, Clock::time_point now) {
  if (pacing_.max_speed) return now;
  if (pacing_.fixed_rate) {
    auto step = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / *pacing_.fixed_rate));
    last_due_ = last_due_ == Clock::time_point{} ? now : std::max(now - step, last_due_ + step);
    return last_due_;
  }
  if (!anchor_ns_) {
    anchor_ns_ = timestamp_ns;
    anchor_at_ = now;
    return now;
  }
  std::int64_t offset = timestamp_ns - *anchor_ns_;
  if (offset <= 0) return now;  // recorded before the anchor: out of order, no wait
  auto scaled = std::chrono::nanoseconds(static_cast<std::int64_t>(static_cast<double>(offset) / pacing_.speed_factor));
  return anchor_at_ + std::chrono::duration_cast<Clock::duration>(scaled);
}

// ---------------------------------------------------------------- NatsConsumerSession

enum class Settlement { ack, nak, terminate };

// Acknowledging a message needs its subscription and connection alive (libnats reaches them
// through a raw pointer in the message), and leases may be released after NatsInput::stop(),
// even after the input is destroyed: the runtime stops inputs first, and stages downstream
// hold messages until they are done. So all of it lives here, owned by the input and by every
// lease; the last owner closes the subscription and the connection.
class NatsConsumerSession : public std::enable_shared_from_this<NatsConsumerSession> {
 public:
  struct Metrics {
    Counter* acked;
    Counter* returned;
    Counter* ack_failed;
    Counter* in_progress;
    Gauge* in_pipeline;
  };

  explicit NatsConsumerSession(Metrics metrics) : metrics_(metrics) {}
  NatsConsumerSession(const NatsConsumerSession&) = delete;
  NatsConsumerSession& operator=(const NatsConsumerSession&) = delete;

  ~NatsConsumerSession() {
    // Nothing is tracked any more: every message was settled (leases hold the session).
    if (subscription) natsSubscription_Destroy(subscription);  // keeps the durable consumer
    if (connection) {
      natsConnection_FlushTimeout(connection, 1000);  // acks and naks still buffered
      natsConnection_Close(connection);
    }
    if (js) jsCtx_Destroy(js);
    if (connection) natsConnection_Destroy(connection);
  }

  bool connected() const { return connection && natsConnection_Status(connection) == NATS_CONN_STATUS_CONNECTED; }

  // A fetched message is tracked (the session owns it) until settled.
  void track(natsMsg* msg, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    tracked_.emplace(msg, Tracked{now, false, false});
  }

  // A lease for the records of `msg`, which is acknowledged once the last copy is released:
  // one NATS message may carry several records (a request and its original response).
  std::shared_ptr<const void> lease(natsMsg* msg) {
    {
      std::lock_guard lock(mutex_);
      tracked_.at(msg).in_pipeline = true;
      ++in_pipeline_;
      if (metrics_.in_pipeline) metrics_.in_pipeline->set(static_cast<std::int64_t>(in_pipeline_));
    }
    class Lease {
     public:
      Lease(std::shared_ptr<NatsConsumerSession> session, natsMsg* msg) : session_(std::move(session)), msg_(msg) {}
      Lease(const Lease&) = delete;
      Lease& operator=(const Lease&) = delete;
      ~Lease() { session_->settle(msg_, Settlement::ack); }

     private:
      std::shared_ptr<NatsConsumerSession> session_;
      natsMsg* msg_;
    };
    return std::make_shared<const Lease>(shared_from_this(), msg);
  }

  // The pipeline did not take every record of `msg`: when its lease is released it goes back
  // to the group (nak) instead of being acknowledged.
  void hand_back_on_release(natsMsg* msg) {
    std::lock_guard lock(mutex_);
    tracked_.at(msg).hand_back = true;
  }

  // Acknowledges, hands back or terminates `msg`, stops tracking it and destroys it.
  void settle(natsMsg* msg, Settlement how) {
    std::lock_guard lock(mutex_);
    auto it = tracked_.find(msg);
    if (it == tracked_.end()) return;
    if (it->second.hand_back && how == Settlement::ack) how = Settlement::nak;
    if (it->second.in_pipeline) {
      --in_pipeline_;
      if (metrics_.in_pipeline) metrics_.in_pipeline->set(static_cast<std::int64_t>(in_pipeline_));
    }
    tracked_.erase(it);
    // Under the lock: keep_alive must not touch a message being settled (libnats marks it acked).
    natsStatus status = how == Settlement::ack   ? natsMsg_Ack(msg, nullptr)
                        : how == Settlement::nak ? natsMsg_Nak(msg, nullptr)
                                                 : natsMsg_Term(msg, nullptr);
    natsMsg_Destroy(msg);
    if (status != NATS_OK) {
      if (metrics_.ack_failed) metrics_.ack_failed->add();  // the server redelivers it after ack_wait
    } else if (how == Settlement::ack) {
      if (metrics_.acked) metrics_.acked->add();
    } else if (how == Settlement::nak) {
      if (metrics_.returned) metrics_.returned->add();
    }
  }

  // Tells the server that messages fetched (or last reported) more than `every` ago are still
  // being worked on, so that ack_wait does not expire while a pacing wait, a full queue or a
  // long join holds them.
  void keep_alive(Clock::time_point now, Clock::duration every) {
    std::lock_guard lock(mutex_);
    for (auto& [msg, t] : tracked_) {
      if (now - t.progress_at < every) continue;
      if (natsMsg_InProgress(msg, nullptr) == NATS_OK && metrics_.in_progress) metrics_.in_progress->add();
      t.progress_at = now;
    }
  }

  // The runtime's counters are gone once the input stopped: later settlements are not counted.
  // Returns how many messages the pipeline still holds.
  std::size_t detach() {
    std::lock_guard lock(mutex_);
    metrics_ = Metrics{};
    return in_pipeline_;
  }

  natsConnection* connection = nullptr;
  jsCtx* js = nullptr;
  natsSubscription* subscription = nullptr;

 private:
  struct Tracked {
    Clock::time_point progress_at;  // fetched, or last reported in progress
    bool in_pipeline;               // a lease was handed out
    bool hand_back;
  };
  std::mutex mutex_;
  std::unordered_map<natsMsg*, Tracked> tracked_;
  std::size_t in_pipeline_ = 0;
  Metrics metrics_;
};

// ---------------------------------------------------------------- NatsInput

NatsInput::NatsInput(NatsInputConfig config) : config_(std::move(config)), pacer_(config_.pacing) {}

NatsInput::~NatsInput() { stop(); }

void NatsInput::warn_every(const std::string& text) {
  auto now = Clock::now();
  if (now - last_warning_ < std::chrono::seconds(5)) return;
  last_warning_ = now;
  context().log().warn("{}", text);
}

std::string NatsInput::subscribe(NatsConsumerSession& session) {
  // The durable consumer is created explicitly (not by the subscribe call) so that it
  // outlives this worker: stopping a worker must never delete the group's consumer.
  jsConsumerInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status =
      js_GetConsumerInfo(&info, session.js, config_.stream.c_str(), config_.durable.c_str(), nullptr, &code);
  if (status == NATS_NOT_FOUND) {
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = config_.durable.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = config_.ack_wait.count();
    cc.MaxAckPending = config_.max_ack_pending;
    cc.MaxDeliver = config_.max_deliver;
    cc.FilterSubject = config_.subject.c_str();
    cc.DeliverPolicy = config_.deliver == DeliverFrom::all   ? js_DeliverAll
                       : config_.deliver == DeliverFrom::new_only ? js_DeliverNew
                                                                 : js_DeliverByStartTime;
    if (config_.deliver == DeliverFrom::since) cc.OptStartTime = config_.since_ns;
    status = js_AddConsumer(&info, session.js, config_.stream.c_str(), &cc, nullptr, &code);
    if (status != NATS_OK && code == JSConsumerNameExistErr)  // another worker was quicker
      status = js_GetConsumerInfo(&info, session.js, config_.stream.c_str(), config_.durable.c_str(), nullptr, &code);
    else if (status == NATS_OK)
      context().log().info("created durable consumer \"{}\" on stream \"{}\"", config_.durable, config_.stream);
  }
  stream_missing_ = status != NATS_OK && code == JSStreamNotFoundErr;
  // An electing or busy cluster answers late or not at all: worth waiting for, not fatal.
  setup_busy_ = status == NATS_TIMEOUT || status == NATS_NO_RESPONDERS;
  if (status != NATS_OK) {
    std::string problem = code == JSStreamNotFoundErr
                              ? "stream \"" + config_.stream + "\" does not exist (start an agent with create_stream = "
                                                               "true, or create it with `nats stream add`)"
                              : "cannot set up durable consumer \"" + config_.durable + "\" on stream \"" +
                                    config_.stream + "\": " + natsStatus_GetText(status) + " (" +
                                    nats_GetLastError(nullptr) + ")";
    return problem;
  }
  std::string problem;
  const jsConsumerConfig& existing = *info->Config;
  std::string filter = existing.FilterSubject ? existing.FilterSubject : "";
  if (!filter.empty() && filter != config_.subject)
    problem = "durable consumer \"" + config_.durable + "\" reads \"" + filter + "\", not \"" + config_.subject +
              "\"; use another `durable` name or delete the consumer (nats consumer rm)";
  else if (existing.AckWait != config_.ack_wait.count())
    context().log().warn("durable consumer \"{}\" exists with ack_wait {}; that setting applies, not {}",
                         config_.durable, format_duration(std::chrono::nanoseconds(existing.AckWait)),
                         format_duration(config_.ack_wait));
  jsConsumerInfo_Destroy(info);
  if (!problem.empty()) return problem;

  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = config_.stream.c_str();
  so.Consumer = config_.durable.c_str();
  so.ManualAck = true;
  natsSubscription* subscription = nullptr;
  status = js_PullSubscribe(&subscription, session.js, config_.subject.c_str(), config_.durable.c_str(), nullptr, &so,
                            &code);
  if (status != NATS_OK) {
    return "cannot bind to durable consumer \"" + config_.durable + "\": " + natsStatus_GetText(status) + " (" +
           nats_GetLastError(nullptr) + ")";
  }
  session.subscription = subscription;
  return {};
}

void NatsInput::start(StageContext& context) {
  Stage::start(context);
  received_ = &context.counter("received");
  redelivered_ = &context.counter("redelivered");
  lag_ms_ = &context.gauge("lag_ms");
  pending_ = &context.gauge("stream_pending");
  auto session = std::make_shared<NatsConsumerSession>(NatsConsumerSession::Metrics{
      &context.counter("acked"), &context.counter("returned"), &context.counter("ack_failed"),
      &context.counter("in_progress"), &context.gauge("in_pipeline")});

  auto options = nats::make_nats_options(config_.connection, nullptr, nullptr);
  // Without a connected-callback the first connect is synchronous; with retry on, we ask for a
  // background connect instead so that a worker can start before the servers.
  natsOptions_SetRetryOnFailedConnect(options.get(), true, [](natsConnection*, void*) {}, nullptr);
  natsStatus status = natsConnection_Connect(&session->connection, options.get());
  if (status == NATS_NOT_YET_CONNECTED) {
    context.log().warn("NATS servers {} unreachable; waiting for them", nats::servers_text(config_.connection));
  } else if (status != NATS_OK) {
    throw std::runtime_error(std::string("cannot connect to NATS servers ") + nats::servers_text(config_.connection) +
                             ": " + natsStatus_GetText(status) + " (" + nats_GetLastError(nullptr) + ")");
  }
  if (natsConnection_JetStream(&session->js, session->connection, nullptr) != NATS_OK) {
    throw std::runtime_error("cannot create a JetStream context");
  }
  if (status == NATS_OK) {
    // Reachable now: a missing stream or a durable reading another subject is a configuration error.
    std::string problem = subscribe(*session);
    if (stream_missing_ || setup_busy_) {
      // Workers may start before any agent created the stream, or while the cluster elects a
      // leader: wait for it (run() retries).
      context.log().warn("{}; waiting for it", problem);
    } else if (!problem.empty()) {
      throw std::runtime_error(problem);
    }
  }
  session_ = session;
  // A fetched message is reported in progress once it is ack_wait/3 old, checked every ack_wait/6.
  auto every = std::chrono::duration_cast<Clock::duration>(config_.ack_wait / 3);
  progress_thread_ = std::jthread([session, every](std::stop_token stop) {
    std::mutex mutex;
    std::condition_variable_any wake;
    std::unique_lock lock(mutex);
    while (!stop.stop_requested()) {
      wake.wait_for(lock, stop, every / 2, [] { return false; });
      if (!stop.stop_requested()) session->keep_alive(Clock::now(), every);
    }
  });
}

bool NatsInput::wait_until(Clock::time_point until, std::stop_token& stop) {
  std::unique_lock lock(wait_mutex_);
  while (!stopping(stop)) {
    auto now = Clock::now();
    if (now >= until) return true;
    // Waking now and then notices a runtime stop that does not fire the token.
    wakeup_.wait_until(lock, stop, std::min(until, now + std::chrono::milliseconds(100)), [] { return false; });
  }
  return false;
}

NatsInput::Outcome NatsInput::deliver(NatsConsumerSession& session, natsMsg* msg, std::stop_token& stop) {
  received_->add();
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
    if (meta->NumDelivered > 1) redelivered_->add();
    pending_->set(static_cast<std::int64_t>(meta->NumPending));
    jsMsgMetaData_Destroy(meta);
  }
  std::string_view body(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
  std::vector<Message> records;
  for (auto record : nats::split_records(body)) {
    auto parsed = gor::parse_record(record);
    if (!parsed) {
      records.clear();
      break;
    }
    records.push_back(std::move(*parsed));
  }
  if (records.empty()) {
    // Not ours (or damaged): terminate it so it is not redelivered forever, and count it.
    context().drop("invalid_record");
    warn_every("skipped a message on \"" + config_.subject + "\" that is not a .gor record (" +
               std::to_string(body.size()) + " bytes); counted as dropped.invalid_record");
    session.settle(msg, Settlement::terminate);
    return Outcome::rejected;
  }
  for (const auto& m : records) {
    if (m.kind != Kind::request) continue;
    auto now = Clock::now();
    auto due = pacer_.due(m.timestamp_ns, now);
    if (due > now && !wait_until(due, stop)) return Outcome::stopped;
    lag_ms_->set(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - due).count());
    break;
  }
  // At-least-once: acknowledged only when the pipeline released every record of it and all
  // that derived from them (replays, verdicts), i.e. when the last copy of the lease goes.
  auto lease = session.lease(msg);
  for (auto& m : records) m.lease = lease;
  for (auto& m : records) {
    if (!context().emit(share(std::move(m)))) {
      session.hand_back_on_release(msg);
      return Outcome::partly_handed_over;
    }
  }
  return Outcome::accepted;
}

void NatsInput::run(std::stop_token stop) {
  std::shared_ptr<NatsConsumerSession> session = session_;
  while (!stopping(stop)) {
    if (!session->subscription) {
      if (!session->connected()) {
        std::unique_lock lock(wait_mutex_);
        wakeup_.wait_for(lock, stop, std::chrono::milliseconds(200), [] { return false; });
        continue;
      }
      std::string problem = subscribe(*session);
      if (!problem.empty()) {
        warn_every(problem + "; retrying");
        std::unique_lock lock(wait_mutex_);
        wakeup_.wait_for(lock, stop, std::chrono::milliseconds(500), [] { return false; });
        continue;
      }
    }
    natsMsgList list{};
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus status = natsSubscription_Fetch(&list, session->subscription, config_.batch, 500, &code);
    if (status == NATS_TIMEOUT) continue;
    if (status != NATS_OK) {
      warn_every(std::string("fetching from \"") + config_.durable + "\" failed: " + natsStatus_GetText(status) +
                 "; retrying");
      std::unique_lock lock(wait_mutex_);
      wakeup_.wait_for(lock, stop, std::chrono::milliseconds(200), [] { return false; });
      continue;
    }
    // The session owns the fetched messages from now on (and keeps them in progress).
    std::vector<natsMsg*> fetched(list.Msgs, list.Msgs + list.Count);
    auto now = Clock::now();
    for (int i = 0; i < list.Count; ++i) {
      session->track(list.Msgs[i], now);
      list.Msgs[i] = nullptr;
    }
    natsMsgList_Destroy(&list);
    std::size_t i = 0;
    while (i < fetched.size()) {
      Outcome outcome = deliver(*session, fetched[i], stop);
      if (outcome == Outcome::stopped) break;
      ++i;
      if (outcome == Outcome::partly_handed_over) break;
    }
    // Stopping: what this worker fetched but did not hand over goes back to the group now
    // rather than after ack_wait (one handed over in part goes back once released).
    for (; i < fetched.size(); ++i) session->settle(fetched[i], Settlement::nak);
  }
}

void NatsInput::stop() {
  if (progress_thread_.joinable()) {
    progress_thread_.request_stop();
    progress_thread_.join();
  }
  if (!session_) return;
  std::size_t held = session_->detach();
  if (held > 0)
    context().log().warn("{} message(s) still held downstream at stop; each is acknowledged when released "
                         "(not counted in `acked`)", held);
  session_.reset();  // the last lease released closes the connection
}

}  // namespace doppel::plugins
