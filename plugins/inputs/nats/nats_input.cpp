#include "nats_input.hpp"

#include <spdlog/spdlog.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <stdexcept>

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

NatsInput::NatsInput(NatsInputConfig config) : config_(std::move(config)), pacer_(config_.pacing) {}

NatsInput::~NatsInput() { stop(); }

bool NatsInput::connected() const {
  return connection_ && natsConnection_Status(connection_) == NATS_CONN_STATUS_CONNECTED;
}

void NatsInput::warn_every(const std::string& text) {
  auto now = Clock::now();
  if (now - last_warning_ < std::chrono::seconds(5)) return;
  last_warning_ = now;
  context().log().warn("{}", text);
}

std::string NatsInput::subscribe() {
  // The durable consumer is created explicitly (not by the subscribe call) so that it
  // outlives this worker: stopping a worker must never delete the group's consumer.
  jsConsumerInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = js_GetConsumerInfo(&info, js_, config_.stream.c_str(), config_.durable.c_str(), nullptr, &code);
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
    status = js_AddConsumer(&info, js_, config_.stream.c_str(), &cc, nullptr, &code);
    if (status != NATS_OK && code == JSConsumerNameExistErr)  // another worker was quicker
      status = js_GetConsumerInfo(&info, js_, config_.stream.c_str(), config_.durable.c_str(), nullptr, &code);
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
  status = js_PullSubscribe(&subscription_, js_, config_.subject.c_str(), config_.durable.c_str(), nullptr, &so, &code);
  if (status != NATS_OK) {
    subscription_ = nullptr;
    return "cannot bind to durable consumer \"" + config_.durable + "\": " + natsStatus_GetText(status) + " (" +
           nats_GetLastError(nullptr) + ")";
  }
  return {};
}

void NatsInput::start(StageContext& context) {
  Stage::start(context);
  received_ = &context.counter("received");
  acked_ = &context.counter("acked");
  redelivered_ = &context.counter("redelivered");
  returned_ = &context.counter("returned");
  lag_ms_ = &context.gauge("lag_ms");
  pending_ = &context.gauge("stream_pending");

  auto options = nats::make_nats_options(config_.connection, nullptr, nullptr);
  // Without a connected-callback the first connect is synchronous; with retry on, we ask for a
  // background connect instead so that a worker can start before the servers.
  natsOptions_SetRetryOnFailedConnect(options.get(), true, [](natsConnection*, void*) {}, nullptr);
  natsStatus status = natsConnection_Connect(&connection_, options.get());
  if (status == NATS_NOT_YET_CONNECTED) {
    context.log().warn("NATS servers {} unreachable; waiting for them", nats::servers_text(config_.connection));
  } else if (status != NATS_OK) {
    std::string error = std::string("cannot connect to NATS servers ") + nats::servers_text(config_.connection) +
                        ": " + natsStatus_GetText(status) + " (" + nats_GetLastError(nullptr) + ")";
    natsConnection_Destroy(connection_);
    connection_ = nullptr;
    throw std::runtime_error(error);
  }
  if (natsConnection_JetStream(&js_, connection_, nullptr) != NATS_OK) {
    natsConnection_Destroy(connection_);
    connection_ = nullptr;
    throw std::runtime_error("cannot create a JetStream context");
  }
  if (status == NATS_OK) {
    // Reachable now: a missing stream or a durable reading another subject is a configuration error.
    std::string problem = subscribe();
    if (stream_missing_ || setup_busy_) {
      // Workers may start before any agent created the stream, or while the cluster elects a
      // leader: wait for it (run() retries).
      context.log().warn("{}; waiting for it", problem);
    } else if (!problem.empty()) {
      stop();
      throw std::runtime_error(problem);
    }
  }
}

bool NatsInput::wait_until(Clock::time_point until, const std::vector<natsMsg*>& waiting, std::stop_token& stop) {
  std::unique_lock lock(wait_mutex_);
  while (!stopping(stop)) {
    auto now = Clock::now();
    if (now >= until) return true;
    // Long pacing waits must not let ack_wait expire (the server would hand the messages to
    // another worker): tell it they are still being worked on.
    if (now - last_progress_ > config_.ack_wait / 3) {
      for (natsMsg* m : waiting) natsMsg_InProgress(m, nullptr);
      last_progress_ = now;
    }
    wakeup_.wait_until(lock, stop, std::min(until, now + std::chrono::milliseconds(100)), [] { return false; });
  }
  return false;
}

NatsInput::Outcome NatsInput::deliver(natsMsg* msg, const std::vector<natsMsg*>& waiting, std::stop_token& stop) {
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
    natsMsg_Term(msg, nullptr);
    warn_every("skipped a message on \"" + config_.subject + "\" that is not a .gor record (" +
               std::to_string(body.size()) + " bytes); counted as dropped.invalid_record");
    return Outcome::rejected;
  }
  for (const auto& m : records) {
    if (m.kind != Kind::request) continue;
    auto now = Clock::now();
    auto due = pacer_.due(m.timestamp_ns, now);
    if (due > now && !wait_until(due, waiting, stop)) return Outcome::stopped;
    lag_ms_->set(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - due).count());
    break;
  }
  for (auto& m : records) {
    if (!context().emit(share(std::move(m)))) return Outcome::stopped;
  }
  // At-least-once: acknowledged only now that the pipeline took every record of it.
  natsMsg_Ack(msg, nullptr);
  acked_->add();
  return Outcome::accepted;
}

void NatsInput::run(std::stop_token stop) {
  while (!stopping(stop)) {
    if (!subscription_) {
      if (!connected()) {
        std::unique_lock lock(wait_mutex_);
        wakeup_.wait_for(lock, stop, std::chrono::milliseconds(200), [] { return false; });
        continue;
      }
      std::string problem = subscribe();
      if (!problem.empty()) {
        warn_every(problem + "; retrying");
        std::unique_lock lock(wait_mutex_);
        wakeup_.wait_for(lock, stop, std::chrono::milliseconds(500), [] { return false; });
        continue;
      }
    }
    natsMsgList list{};
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus status = natsSubscription_Fetch(&list, subscription_, config_.batch, 500, &code);
    if (status == NATS_TIMEOUT) continue;
    if (status != NATS_OK) {
      warn_every(std::string("fetching from \"") + config_.durable + "\" failed: " + natsStatus_GetText(status) +
                 "; retrying");
      std::unique_lock lock(wait_mutex_);
      wakeup_.wait_for(lock, stop, std::chrono::milliseconds(200), [] { return false; });
      continue;
    }
    last_progress_ = Clock::now();
    std::vector<natsMsg*> waiting(list.Msgs, list.Msgs + list.Count);
    std::size_t i = 0;
    for (; i < waiting.size(); ++i) {
      std::vector<natsMsg*> rest(waiting.begin() + static_cast<std::ptrdiff_t>(i), waiting.end());
      if (deliver(waiting[i], rest, stop) == Outcome::stopped) break;
    }
    // Stopping: what this worker fetched but did not hand over goes back to the group now
    // rather than after ack_wait.
    for (; i < waiting.size(); ++i) {
      natsMsg_Nak(waiting[i], nullptr);
      returned_->add();
    }
    natsMsgList_Destroy(&list);
  }
}

void NatsInput::stop() {
  if (subscription_) natsSubscription_Destroy(subscription_);  // keeps the durable consumer
  subscription_ = nullptr;
  if (connection_) {
    natsConnection_FlushTimeout(connection_, 1000);  // acks and naks still buffered
    natsConnection_Close(connection_);
  }
  if (js_) jsCtx_Destroy(js_);
  if (connection_) natsConnection_Destroy(connection_);
  js_ = nullptr;
  connection_ = nullptr;
}

}  // namespace doppel::plugins
