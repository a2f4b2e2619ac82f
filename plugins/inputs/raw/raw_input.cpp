#include "raw_input.hpp"

#include <pcap/pcap.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <utility>

namespace doppel::plugins::raw {
namespace {

struct DispatchState {
  CaptureSession* session;
  int link_type;
  SkipCounts* skips;
  const GeneratedFilter* generated;  // tests again what BPF tested only in part, or not at all (NFLOG)
  std::vector<IpAddress> hosts;
};

void on_packet(u_char* user, const pcap_pkthdr* header, const u_char* bytes) {
  auto* state = reinterpret_cast<DispatchState*>(user);
  // Opened with nanosecond precision: tv_usec holds nanoseconds.
  std::int64_t ts = static_cast<std::int64_t>(header->ts.tv_sec) * 1'000'000'000 + header->ts.tv_usec;
  TcpSegment segment;
  DecodeStatus status = decode_packet(state->link_type, bytes, header->caplen, header->len, segment);
  if (status == DecodeStatus::tcp) {
    if (state->generated && (segment.encapsulated || state->link_type == DLT_NFLOG) &&
        !state->generated->matches(segment, state->hosts))
      return;
  } else {
    state->skips->add(segment.skip);
  }
  state->session->add_decoded(status, segment, header->len, ts);
}

// "IEEE802_11 (802.11, DLT 105)"; "unknown (DLT 4242)" when libpcap has no name for it.
std::string link_type_name(int link_type) {
  const char* name = pcap_datalink_val_to_name(link_type);
  const char* description = pcap_datalink_val_to_description(link_type);
  std::string out = name ? name : "unknown";
  if (description) out += std::string(" (") + description + ", DLT " + std::to_string(link_type) + ")";
  else out += " (DLT " + std::to_string(link_type) + ")";
  return out;
}

}  // namespace

std::optional<KindSet> RawInput::produces() const {
  return config_.capture.track_response ? KindSet{Kind::request, Kind::response} : KindSet{Kind::request};
}

OverflowPolicy RawInput::overflow_policy() const {
  // A live capture never waits for a slow stage (the kernel would drop instead, unseen);
  // a file can wait.
  return config_.file.empty() ? OverflowPolicy::drop : OverflowPolicy::block;
}

void RawInput::run(std::stop_token stop) {
  if (config_.file.empty()) run_live(stop);
  else run_file(stop);
}

RawInput::~RawInput() {
  if (live_handle_ != nullptr) pcap_close(static_cast<pcap_t*>(live_handle_));
}

void RawInput::start(StageContext& context) {
  Stage::start(context);
  // A live capture's handle is opened here, not in run(): `doppel run` started as root gives up
  // the capabilities that opening it needs once every stage has started (docs/operations.md).
  if (config_.file.empty()) live_handle_ = open_live();
}

void* RawInput::open_live() {
  char error[PCAP_ERRBUF_SIZE] = {};
  pcap_t* handle = pcap_create(config_.interface.c_str(), error);
  if (handle == nullptr) {
    context().log().error("raw: cannot capture on \"{}\": {}", config_.interface, error);
    context().fail("capture_error");
    return nullptr;
  }
  pcap_set_snaplen(handle, config_.snaplen);
  pcap_set_promisc(handle, config_.promiscuous ? 1 : 0);
  pcap_set_timeout(handle, config_.buffer_timeout_ms);
  pcap_set_immediate_mode(handle, config_.immediate ? 1 : 0);
  pcap_set_buffer_size(handle, static_cast<int>(config_.buffer_size));
  pcap_set_tstamp_precision(handle, PCAP_TSTAMP_PRECISION_NANO);
  int status = pcap_activate(handle);
  if (status < 0) {
    context().log().error("raw: cannot capture on \"{}\": {}", config_.interface, pcap_geterr(handle));
    context().fail("capture_error");
    pcap_close(handle);
    return nullptr;
  }
  if (status > 0) context().log().warn("raw: {}: {}", config_.interface, pcap_statustostr(status));
  skip_loopback_duplicates(handle);
  int link_type = pcap_datalink(handle);
  if (!link_type_supported(link_type)) {
    context().log().error("raw: cannot capture on \"{}\": its link type {} is not one doppel decodes ({})",
                          config_.interface, link_type_name(link_type), supported_link_type_names());
    context().fail("capture_error");
    pcap_close(handle);
    return nullptr;
  }
  std::string filter = effective_filter(link_type);
  bpf_program program{};
  if (pcap_compile(handle, &program, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0 ||
      pcap_setfilter(handle, &program) != 0) {
    context().log().error("raw: filter \"{}\": {}", filter, pcap_geterr(handle));
    context().fail("capture_error");
    pcap_freecode(&program);
    pcap_close(handle);
    return nullptr;
  }
  pcap_freecode(&program);
  context().log().info("raw: capturing {} ({}), filter {}", config_.interface, link_type_name(link_type),
                       shown_filter(link_type));
  return handle;
}

void RawInput::run_live(std::stop_token stop) {
  // Opened by start(); nothing to capture when that failed (counted there).
  pcap_t* handle = static_cast<pcap_t*>(std::exchange(live_handle_, nullptr));
  if (handle == nullptr) return;
  char error[PCAP_ERRBUF_SIZE] = {};
  int link_type = pcap_datalink(handle);

  // Messages of one pcap_dispatch call go downstream together (one queue hand-off per batch);
  // the runtime stamps them with this stage's name.
  std::vector<MessagePtr> batch;
  CaptureSession session(config_.capture, CaptureSession::EmitShared([&](std::shared_ptr<Message>&& message) {
    batch.push_back(std::move(message));
  }));
  auto emit_batch = [&] {
    if (!batch.empty()) context().emit_batch(batch);
  };
  SkipCounts skips;
  const GeneratedFilter* generated = config_.generated ? &*config_.generated : nullptr;
  DispatchState state{&session, link_type, &skips, generated,
                      generated ? generated->host_addresses().value_or(std::vector<IpAddress>{})
                                : std::vector<IpAddress>{}};
  auto last_publish = std::chrono::steady_clock::now();
  pcap_setnonblock(handle, 1, error);
  int fd = pcap_get_selectable_fd(handle);
  while (!stop.stop_requested() && !context().stopping()) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 100);  // bounded wait: stop is noticed within 100 ms
    int n = pcap_dispatch(handle, -1, &on_packet, reinterpret_cast<u_char*>(&state));
    emit_batch();
    if (n < 0) {
      context().log().error("raw: capture on \"{}\" failed: {}", config_.interface, pcap_geterr(handle));
      context().fail("capture_error");
      break;
    }
    auto now = std::chrono::steady_clock::now();
    if (now - last_publish >= std::chrono::seconds(1)) {
      last_publish = now;
      session.advance(now_ns());
      emit_batch();
      publish_pcap_stats(handle);
      publish(0, session.stats(), skips);
    }
  }
  // Packets already in the ring (a block not yet handed over) are processed, not lost
  // unseen: a bounded number of non-blocking reads.
  for (int i = 0; i < 64 && pcap_dispatch(handle, -1, &on_packet, reinterpret_cast<u_char*>(&state)) > 0; ++i)
    emit_batch();
  publish_pcap_stats(handle);
  session.finish(now_ns());
  emit_batch();
  publish(0, session.stats(), skips);
  pcap_close(handle);
}

std::string RawInput::shown_filter(int link_type) const {
  // The generated expression repeats the base test inside each encapsulation: shown once.
  if (!config_.generated) return "\"" + config_.filter + "\"";
  std::string base = "\"" + config_.generated->expression() + "\"";
  if (link_type == DLT_NFLOG) return base + " (applied by doppel to each decoded segment: BPF cannot read NFLOG)";
  std::string full = config_.generated->expression_for(link_type);
  if (full == config_.generated->expression()) return base;
  return base + " (also inside VLAN tags, PPPoE, MPLS, VXLAN and GRE: " + std::to_string(full.size()) +
         " characters in all)";
}

std::string RawInput::effective_filter(int link_type) const {
  return config_.generated ? config_.generated->expression_for(link_type) : config_.filter;
}

std::size_t RawInput::file_threads() const {
  if (config_.threads > 0) return static_cast<std::size_t>(config_.threads);
  return std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 8);
}

void RawInput::run_file(std::stop_token stop) {
  // A file that cannot be read at all ends the input with an error (exit 65). A regular file was
  // checked at validation (capture_file_problem); standard input is seen here for the first time.
  const std::string name = config_.file == "-" ? "standard input" : config_.file;
  std::string error;
  auto file = CaptureFile::open(config_.file, error);
  if (!file) throw std::runtime_error("raw: cannot read " + name + " as a pcap or pcapng capture: " + error);
  int link_type = file->link_type();
  if (!link_type_supported(link_type))
    throw std::runtime_error("raw: cannot read " + name + ": its link type " + link_type_name(link_type) +
                             " is not one doppel decodes (" + supported_link_type_names() + ")");
  if (std::string secrets = pcapng_tls_secrets(config_.file); !secrets.empty()) {
    if (!config_.capture.tls_keys)
      config_.capture.tls_keys = std::make_shared<TlsKeySource>("", config_.capture.keylog_limits);
    std::size_t before = config_.capture.tls_keys->keys().size();
    config_.capture.tls_keys->add_embedded(secrets);
    context().log().info("raw: {} carries TLS secrets (Decryption Secrets Blocks) for {} connections", name,
                         config_.capture.tls_keys->keys().size() - before);
    // A server's handshake says how its client's records are protected: both directions are read.
    if (config_.generated && config_.generated->requests_only) {
      config_.generated->requests_only = false;
      config_.capture.responses_seen = true;
    }
  }
  std::string filter = effective_filter(link_type);
  std::unique_ptr<FrameFilter> frame_filter;
  try {
    frame_filter = std::make_unique<FrameFilter>(*file, filter);
  } catch (const std::exception& e) {
    throw std::runtime_error("raw: filter \"" + filter + "\" for " + name + ": " + e.what());
  }
  auto reader = file->reader(error);
  if (!reader) throw std::runtime_error("raw: cannot read " + name + ": " + error);
  std::size_t threads = file_threads();
  context().log().info("raw: reading {} ({}, {}) with {} thread{}, filter {}", config_.file,
                       link_type_name(link_type), file->mapped() ? "mapped" : "libpcap", threads,
                       threads == 1 ? "" : "s", shown_filter(link_type));
  {
    std::lock_guard lock(stats_mutex_);
    shard_stats_.assign(threads, CaptureStats{});
    shard_skips_.assign(threads, SkipCounts{});
  }
  const GeneratedFilter* generated = config_.generated ? &*config_.generated : nullptr;
  std::vector<IpAddress> hosts;
  if (generated) hosts = generated->host_addresses().value_or(std::vector<IpAddress>{});
  FrameSplitter splitter(
      *reader, link_type, file->mapped(), threads,
      [&](const CapturedFrame& frame, DecodeStatus status, const TcpSegment& segment) {
        std::optional<bool> verdict;
        if (generated && status == DecodeStatus::tcp) {
          if (segment.encapsulated) return generated->matches(segment, hosts) && frame_filter->matches(frame);
          verdict = generated->verdict(link_type, frame, segment, hosts);
        }
        return verdict ? *verdict : frame_filter->matches(frame);
      });
  OrderedEmitter emitter(threads, [this](std::vector<MessagePtr>& messages) { context().emit_batch(messages); });
  auto budget = std::make_shared<ReassemblyBudget>();
  std::vector<std::jthread> helpers;
  for (std::size_t shard = 1; shard < threads; ++shard)
    helpers.emplace_back([&, shard] { extract(stop, splitter, emitter, shard, budget); });
  extract(stop, splitter, emitter, 0, budget);
  helpers.clear();  // joins
  if (std::string why = splitter.error(); !why.empty()) {
    // A file cut short or damaged part way: what was before it went on, the loss is counted
    // (exit 5). A read error means the rest cannot be trusted: the input fails (exit 65).
    std::int64_t offset = reader->failure_offset();
    std::string where = offset >= 0 ? "at byte " + std::to_string(offset) + ", " : "";
    switch (reader->failure()) {
      case CaptureFile::Reader::Failure::truncated:
        context().drop("truncated_input");
        context().log().warn("raw: {} is cut short ({}after {} frames): {}; the messages before were read", name,
                             where, reader->frames(), why);
        break;
      case CaptureFile::Reader::Failure::corrupt:
        context().drop("corrupt_input");
        context().log().warn("raw: {} cannot be read further ({}after {} frames): {}; the messages before were read",
                             name, where, reader->frames(), why);
        break;
      case CaptureFile::Reader::Failure::io:
      case CaptureFile::Reader::Failure::none:
        throw std::runtime_error("raw: reading " + name + " failed (" + where + "after " +
                                 std::to_string(reader->frames()) + " frames): " + why);
    }
  }
}

void RawInput::extract(std::stop_token stop, FrameSplitter& splitter, OrderedEmitter& emitter, std::size_t shard,
                       const std::shared_ptr<ReassemblyBudget>& budget) {
  // However this thread ends, no window waits for it.
  struct Leave {
    FrameSplitter& splitter;
    OrderedEmitter& emitter;
    std::size_t shard;
    ~Leave() {
      splitter.leave(shard);
      emitter.finish(shard);
    }
  } leave{splitter, emitter, shard};
  try {
    // The messages of each window of frames go downstream together, in capture order.
    std::vector<MessagePtr> batch;
    const std::string& stage_name = context().stage_name();
    CaptureSession session(
        config_.capture,
        CaptureSession::EmitShared([&](std::shared_ptr<Message>&& message) {
          // Stamped here, by the thread that built it and still has it in its cache: the
          // runtime would otherwise stamp it on the thread that happens to emit the window.
          message->meta.stage = stage_name;
          batch.push_back(std::move(message));
        }),
        budget);
    SkipCounts skips;
    std::int64_t last_ts = 0;
    std::uint64_t window = 0;
    auto last_publish = std::chrono::steady_clock::now();
    for (;; ++window) {
      if (stop.stop_requested() || context().stopping()) {
        splitter.stop();
        break;
      }
      const FrameSplitter::Window* frames = splitter.take(shard, window);
      if (frames == nullptr) break;
      const auto& mine = frames->frames[shard];
      for (std::size_t i = 0; i < mine.size(); ++i) {
        // The payload of a frame two ahead is fetched while this one is worked on: this
        // thread has not touched those bytes yet (another thread decoded the headers).
        if (i + 2 < mine.size()) {
          const char* ahead = mine[i + 2].segment.payload.data();
          __builtin_prefetch(ahead);
          __builtin_prefetch(ahead + 64);
        }
        const SplitFrame& f = mine[i];
        if (f.status != DecodeStatus::tcp) skips.add(f.segment.skip);
        session.add_decoded(f.status, f.segment, f.wirelen, f.timestamp_ns);
      }
      // Time passes for every thread: idle connections expire as they would with one.
      last_ts = frames->last_timestamp_ns;
      session.advance(last_ts);
      emitter.deliver(shard, window, batch);
      auto now = std::chrono::steady_clock::now();
      if (now - last_publish >= std::chrono::seconds(1)) {
        last_publish = now;
        publish(shard, session.stats(), skips);
      }
    }
    splitter.leave(shard);
    session.finish(last_ts);
    emitter.deliver(shard, window, batch);  // as one more window, after the last one read
    publish(shard, session.stats(), skips);
  } catch (const std::exception& e) {
    context().log().error("raw: reading {} failed: {}", config_.file, e.what());
    context().fail("capture_error");
  }
}

void RawInput::skip_loopback_duplicates(void* raw_handle) {
  // On a loopback interface every packet passes twice, outgoing then incoming, and libpcap
  // discards the outgoing copy. Telling the kernel not to make that copy saves a clone and a
  // filter run per packet in the sender's own system call, i.e. in the captured service.
  // Only on loopback: elsewhere (and on "any") outgoing packets are real traffic.
  auto* handle = static_cast<pcap_t*>(raw_handle);
  int fd = pcap_fileno(handle);
  ifreq request{};
  if (fd < 0 || config_.interface.size() >= sizeof request.ifr_name) return;
  std::memcpy(request.ifr_name, config_.interface.c_str(), config_.interface.size() + 1);
  if (::ioctl(fd, SIOCGIFFLAGS, &request) != 0 || !(request.ifr_flags & IFF_LOOPBACK)) return;
  int one = 1;
  if (::setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) != 0)
    context().log().debug("raw: PACKET_IGNORE_OUTGOING not available: {}", std::strerror(errno));
}

void RawInput::publish_pcap_stats(void* raw_handle) {
  auto* handle = static_cast<pcap_t*>(raw_handle);
  pcap_stat stats{};
  if (pcap_stats(handle, &stats) != 0) return;
  if (stats.ps_drop > kernel_drops_) context().drop("kernel", stats.ps_drop - kernel_drops_);
  if (stats.ps_ifdrop > interface_drops_) context().drop("interface", stats.ps_ifdrop - interface_drops_);
  kernel_drops_ = stats.ps_drop;
  interface_drops_ = stats.ps_ifdrop;
}

void RawInput::publish(std::size_t shard, const CaptureStats& latest, const SkipCounts& latest_skips) {
  std::lock_guard lock(stats_mutex_);
  if (shard_stats_.size() <= shard) shard_stats_.resize(shard + 1);
  if (shard_skips_.size() <= shard) shard_skips_.resize(shard + 1);
  shard_stats_[shard] = latest;
  shard_skips_[shard] = latest_skips;
  CaptureStats now;
  for (const auto& part : shard_stats_) now += part;
  SkipCounts skips;
  for (const auto& part : shard_skips_) {
    skips.unsupported_encapsulation += part.unsupported_encapsulation;
    skips.too_deep += part.too_deep;
  }
  CaptureStats& was = published_;
  auto add = [this](std::string_view name, std::uint64_t current, std::uint64_t& previous) {
    if (current > previous) context().counter(name).add(current - previous);
    previous = current;
  };
  add("packets", now.packets, was.packets);
  add("bytes", now.bytes, was.bytes);
  add("packets.not_tcp", now.packets_not_tcp, was.packets_not_tcp);
  add("packets.fragment", now.packets_fragment, was.packets_fragment);
  add("packets.truncated", now.packets_truncated, was.packets_truncated);
  add("packets.malformed", now.packets_malformed, was.packets_malformed);
  // Parts of packets.not_tcp: why an encapsulated frame was not opened.
  add("packets.unsupported_encapsulation", skips.unsupported_encapsulation, published_skips_.unsupported_encapsulation);
  add("packets.too_deep", skips.too_deep, published_skips_.too_deep);
  add("requests", now.requests, was.requests);
  add("responses", now.responses, was.responses);
  add("responses.interim", now.interim_responses, was.interim_responses);
  add("responses.missing", now.responses_missing, was.responses_missing);
  add("responses.early", now.early_responses, was.early_responses);
  add("messages.incomplete", now.incomplete_emitted, was.incomplete_emitted);
  add("connections", now.reassembly.connections_opened, was.reassembly.connections_opened);
  add("connections.midstream", now.reassembly.connections_midstream, was.reassembly.connections_midstream);
  add("connections.expired", now.reassembly.connections_expired, was.reassembly.connections_expired);
  add("connections.upgraded", now.upgrades, was.upgrades);
  add("segments.duplicate", now.reassembly.duplicate_segments, was.reassembly.duplicate_segments);
  add("segments.over_budget", now.reassembly.segments_over_budget, was.reassembly.segments_over_budget);
  add("bytes.overlap", now.reassembly.overlapping_bytes, was.reassembly.overlapping_bytes);
  add("bytes.gap", now.reassembly.gap_bytes, was.reassembly.gap_bytes);
  add("bytes.truncated", now.reassembly.truncated_bytes, was.reassembly.truncated_bytes);
  add("bytes.evicted", now.reassembly.evicted_bytes, was.reassembly.evicted_bytes);
  add("connections.evicted", now.reassembly.evictions, was.reassembly.evictions);
  add("h2.connections", now.h2.connections, was.h2.connections);
  add("h2.midstream", now.h2.midstream, was.h2.midstream);
  add("h2.streams", now.h2.streams, was.h2.streams);
  add("h2.resets", now.h2.resets, was.h2.resets);
  add("h2.goaway", now.h2.goaways, was.h2.goaways);
  add("h2.gaps", now.h2.gaps, was.h2.gaps);
  add("h2.frame_errors", now.h2.frame_errors, was.h2.frame_errors);
  add("h2.hpack_errors", now.h2.hpack_errors, was.h2.hpack_errors);
  add("h2.streams_abandoned", now.h2.streams_abandoned, was.h2.streams_abandoned);
  add("tls.connections", now.tls.connections, was.tls.connections);
  add("tls.decrypted", now.tls.decrypted, was.tls.decrypted);
  add("tls.resumed", now.tls.resumed, was.tls.resumed);
  add("tls.midstream", now.tls.midstream, was.tls.midstream);
  for (std::size_t i = 1; i < kTlsFailureCount; ++i)
    add(std::string("tls.") + std::string(tls_failure_name(static_cast<TlsFailure>(i))), now.tls.failed[i],
        was.tls.failed[i]);
  for (const auto& [cipher, count] : now.tls.unsupported_ciphers) {
    std::uint64_t& previous = was.tls.unsupported_ciphers[cipher];
    if (previous == 0 && count > 0)
      context().log().warn("raw: TLS connections with cipher suite {}, which doppel does not decrypt "
                           "(docs/guide/tls.md lists those it does)",
                           cipher);
    add("tls.unsupported_cipher." + cipher, count, previous);
  }
  if (config_.capture.tls_keys) {
    TlsKeyLogStats keylog = config_.capture.tls_keys->keys().stats();
    add("tls.keylog.lines", keylog.lines, published_keylog_.lines);
    if (keylog.bad_lines > published_keylog_.bad_lines)
      context().log().warn("raw: {} key log line{} with a bad secret skipped (bad hex or a wrong length)",
                           keylog.bad_lines - published_keylog_.bad_lines,
                           keylog.bad_lines - published_keylog_.bad_lines == 1 ? "" : "s");
    add("tls.keylog.bad_lines", keylog.bad_lines, published_keylog_.bad_lines);
    if (keylog.evicted_unused > 0 && published_keylog_.evicted_unused == 0)
      context().log().warn("raw: the TLS key log holds more than tls_max_keys ({}) connections' secrets: the oldest "
                           "are forgotten, some before any connection used them (tls.keylog.evicted); a capture file "
                           "whose key log is larger needs a larger tls_max_keys",
                           config_.capture.tls_keys->keys().limits().max_keys);
    published_keylog_.evicted_unused = keylog.evicted_unused;
    add("tls.keylog.evicted", keylog.evicted, published_keylog_.evicted);
    add("tls.sessions.evicted", keylog.sessions_evicted, published_keylog_.sessions_evicted);
    context().gauge("table.tls_keys").set(static_cast<std::int64_t>(config_.capture.tls_keys->keys().size()));
    context().gauge("table.tls_sessions").set(static_cast<std::int64_t>(config_.capture.tls_keys->keys().sessions()));
  }
  for (std::size_t i = 0; i < kDropReasonCount; ++i) {
    if (now.dropped[i] > was.dropped[i])
      context().drop(drop_reason_name(static_cast<DropReason>(i)), now.dropped[i] - was.dropped[i]);
    was.dropped[i] = now.dropped[i];
  }
  context().gauge("buffer.bytes").set(static_cast<std::int64_t>(now.reassembly.buffered_bytes));
  context().gauge("memory.bytes").set(static_cast<std::int64_t>(now.reassembly.memory_bytes));
  context().gauge("table.connections").set(static_cast<std::int64_t>(now.tables.connections));
  context().gauge("table.pending_requests").set(static_cast<std::int64_t>(now.tables.pending_requests));
  context().gauge("table.h2_streams").set(static_cast<std::int64_t>(now.tables.h2_streams));
  context().gauge("table.tls_awaiting_keys").set(static_cast<std::int64_t>(now.tables.tls_awaiting_keys));
}

}  // namespace doppel::plugins::raw
