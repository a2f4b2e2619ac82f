// Plugin `raw`: options, their parsing into RawInputConfig, and registration.
#include <pcap/pcap.h>

#include <chrono>

#include "doppel/plugin.hpp"
#include "raw_input.hpp"
#include "tls_key_source.hpp"

namespace doppel::plugins::raw {
namespace {

std::uint16_t port_number(const Options& options, std::string_view name, const std::string& text) {
  std::size_t used = 0;
  long value = -1;
  try {
    value = std::stol(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value < 1 || value > 65535)
    options.fail(name, "\"" + text + "\" is not a TCP port (1-65535)");
  return static_cast<std::uint16_t>(value);
}

RawInputConfig parse(const Options& options) {
  RawInputConfig c;
  c.file = options.has("file") ? options.string("file") : "";
  if (!c.file.empty()) {
    if (options.has("interface")) options.fail("interface", "set either `interface` (live) or `file`, not both");
    // "-" is standard input, as for tcpdump -r: checked when it is read.
    if (c.file != "-")
      if (auto problem = capture_file_problem(c.file)) options.fail("file", *problem);
  } else {
    c.interface = options.string("interface");
  }
  std::vector<std::uint16_t> ports;
  if (options.has("port")) ports.push_back(port_number(options, "port", std::to_string(options.integer("port"))));
  for (const auto& text : options.strings("ports")) ports.push_back(port_number(options, "ports", text));
  c.capture.server_ports = ports;
  if (!options.has("bpf")) {
    // Without track_response the responses are not needed: a generated filter takes only what
    // goes to the server ports (the kernel copies half the packets), and the session is told so.
    // Not with a TLS key log: a server's handshake says how its client's records are protected.
    bool requests_only = !options.boolean("track_response") && !ports.empty() && options.string("tls_keylog").empty();
    GeneratedFilter generated{ports, options.string("host"), requests_only};
    c.capture.responses_seen = !generated.requests_only;
    c.filter = generated.expression();
    c.generated = std::move(generated);
  } else {
    c.filter = options.string("bpf");
  }
  if (options.has("bpf") && (options.has("host")))
    options.fail("bpf", "`bpf` replaces the generated filter: put the host into it instead of `host`");
  {
    // Checked now so that a typo fails validation, not the capture thread.
    pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
    bpf_program program{};
    if (pcap_compile(dead, &program, c.filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
      std::string why = pcap_geterr(dead);
      pcap_close(dead);
      options.fail(options.has("bpf") ? "bpf" : "host", "invalid BPF filter \"" + c.filter + "\": " + why);
    }
    pcap_freecode(&program);
    pcap_close(dead);
  }
  auto snaplen = options.integer("snaplen");
  if (snaplen < 64 || snaplen > 262144) options.fail("snaplen", "snaplen must be between 64 and 262144");
  c.snaplen = static_cast<int>(snaplen);
  c.buffer_size = options.size("buffer_size");
  if (c.buffer_size > (std::uint64_t{1} << 31)) options.fail("buffer_size", "buffer_size is at most 2GiB");
  c.promiscuous = options.boolean("promiscuous");
  c.immediate = options.boolean("immediate");
  auto timeout_ms = std::chrono::duration_cast<std::chrono::milliseconds>(options.duration("buffer_timeout")).count();
  if (timeout_ms < 1 || timeout_ms > 10'000)
    options.fail("buffer_timeout", "buffer_timeout must be between 1ms and 10s");
  c.buffer_timeout_ms = static_cast<int>(timeout_ms);

  auto threads = options.integer("threads");
  if (threads < 0 || threads > 64) options.fail("threads", "threads must be between 0 (one per core) and 64");
  if (threads > 0 && c.file.empty()) options.fail("threads", "`threads` applies to a capture `file`; a live capture reads with one");
  c.threads = static_cast<int>(threads);

  CaptureConfig& cap = c.capture;
  cap.track_response = options.boolean("track_response");
  cap.allow_incomplete = options.boolean("allow_incomplete");
  cap.max_message_size = options.size("max_message_size");
  cap.realip_header = options.string("realip_header");
  auto max_connections = options.integer("max_connections");
  if (max_connections < 1) options.fail("max_connections", "max_connections must be at least 1");
  cap.limits.max_connections = static_cast<std::size_t>(max_connections);
  cap.limits.max_connection_buffer = options.size("max_connection_buffer");
  cap.limits.max_total_buffer = options.size("max_buffer");
  cap.limits.idle_timeout_ns = options.duration("expire").count();
  cap.limits.gap_timeout_ns = options.duration("gap_timeout").count();
  if (cap.limits.idle_timeout_ns <= 0) options.fail("expire", "expire must be positive");
  cap.limits.memory_budget = options.size("memory_budget");
  // Below this not even a few connections' state fits.
  if (cap.limits.memory_budget < (std::uint64_t{64} << 10))
    options.fail("memory_budget", "memory_budget is at least 64KiB");
  auto max_keys = options.integer("tls_max_keys"), max_sessions = options.integer("tls_max_sessions");
  if (max_keys < 1 || max_keys > 100'000'000)
    options.fail("tls_max_keys", "tls_max_keys must be between 1 and 100000000");
  if (max_sessions < 0 || max_sessions > 100'000'000)
    options.fail("tls_max_sessions", "tls_max_sessions must be between 0 (resumption not followed) and 100000000");
  cap.keylog_limits.max_keys = static_cast<std::size_t>(max_keys);
  cap.keylog_limits.max_sessions = static_cast<std::size_t>(max_sessions);
  if (std::string keylog = options.string("tls_keylog"); !keylog.empty()) {
    try {
      cap.tls_keys = std::make_shared<TlsKeySource>(keylog, cap.keylog_limits);
    } catch (const std::exception& e) {
      options.fail("tls_keylog", e.what());
    }
  }
  cap.tls_limits.key_wait_ns = options.duration("tls_key_wait").count();
  if (cap.tls_limits.key_wait_ns < 0 || cap.tls_limits.key_wait_ns > 3'600'000'000'000)
    options.fail("tls_key_wait", "tls_key_wait must be between 0s and 1h");
  cap.tls_limits.max_held_bytes = options.size("tls_key_wait_buffer");
  if (cap.tls_limits.max_held_bytes < 16384 + 2048 || cap.tls_limits.max_held_bytes > (std::uint64_t{1} << 30))
    options.fail("tls_key_wait_buffer", "tls_key_wait_buffer must be between 18KiB (one record) and 1GiB");
  return c;
}

PluginDefinition raw_input_definition() {
  PluginDefinition def;
  def.name = "raw";
  def.role = Role::input;
  def.description =
      "Captures HTTP/1.x and HTTP/2 traffic with libpcap (live interface or pcap/pcapng file), with TCP "
      "reassembly; HTTPS too, decrypted with a TLS key log";
  def.produces = KindSet{Kind::request, Kind::response};
  def.options = {
      option("interface", OptionType::string, "Interface to capture live: \"any\", \"lo\", \"eth0\". GoReplay: --input-raw")
          .default_value("any"),
      option("file", OptionType::string,
             "Read a pcap or pcapng capture instead of an interface (\"-\": standard input); original timestamps "
             "are kept. A file that is empty, not pcap/pcapng or of a link type doppel does not decode is refused "
             "at validation; one cut short is read up to the cut and counted as dropped.truncated_input"),
      option("port", OptionType::integer, "Server port of the traffic to capture (e.g. 16888)"),
      option("ports", OptionType::any_list, "Several server ports").default_value(Value::array({})),
      option("host", OptionType::string, "Only traffic to or from this host (BPF `host`)").default_value(""),
      option("bpf", OptionType::string, "A BPF filter replacing the one generated from port/ports/host. "
                                        "GoReplay: --input-raw-bpf-filter"),
      option("snaplen", OptionType::integer, "Bytes captured per packet (never the MTU: bodies would be cut)")
          .default_value(262144),
      option("buffer_size", OptionType::size, "Kernel capture buffer. GoReplay: --input-raw-buffer-size")
          .default_value("64MiB"),
      option("promiscuous", OptionType::boolean, "Capture traffic not addressed to this host")
          .default_value(false),
      option("immediate", OptionType::boolean,
             "Deliver each packet as it arrives (one wake-up per packet) instead of in kernel blocks "
             "(TPACKET_V3, at most buffer_timeout late). GoReplay: --input-raw-immediate-mode")
          .default_value(false),
      option("buffer_timeout", OptionType::duration,
             "Without immediate mode, how long the kernel holds a partly filled block of packets. "
             "GoReplay: --input-raw-buffer-timeout")
          .default_value("10ms"),
      option("track_response", OptionType::boolean,
             "Also emit the original responses, with their request's id. GoReplay: --input-raw-track-response")
          .default_value(false),
      option("allow_incomplete", OptionType::boolean,
             "Emit messages with unseen bytes (snaplen, lost packets) marked incomplete instead of dropping them. "
             "GoReplay: --input-raw-allow-incomplete")
          .default_value(false),
      option("expire", OptionType::duration,
             "A connection without data (or SYN/FIN/RST) for this long is forgotten; a message in progress "
             "is dropped as `expired`. GoReplay: --input-raw-expire")
          .default_value("60s"),
      option("gap_timeout", OptionType::duration,
             "How long a hole in a stream (a lost packet) is waited for before it is skipped")
          .default_value("2s"),
      option("threads", OptionType::integer,
             "Threads reading a capture `file`, each owning part of its connections (0: one per core, at most "
             "8). Messages leave in capture order to within a window of 1,024 frames")
          .default_value(0),
      option("max_connections", OptionType::integer, "Connections tracked at once; packets of further ones are "
                                                     "dropped as `flow_table_full`")
          .default_value(100000),
      option("max_connection_buffer", OptionType::size, "Out-of-order bytes held per connection")
          .default_value("4MiB"),
      option("max_buffer", OptionType::size, "Out-of-order bytes held in all connections").default_value("256MiB"),
      option("max_message_size", OptionType::size,
             "Largest message kept; larger ones are dropped as `too_large` (their stream stays in sync)")
          .default_value("64MiB"),
      option("memory_budget", OptionType::size,
             "Bytes the capture holds at most, all connections (and all `threads`) together: out-of-order "
             "segments, messages being assembled (head and body), responses waiting for their request to end, "
             "each connection's state (about 4.5 KiB) and its queue of requests awaiting a response. When more "
             "would not fit, the connections holding the most bytes (of equal ones the oldest) give them up "
             "until a sixteenth of the budget is free: each message lost is dropped as `budget_exceeded` and "
             "its stream stays in sync; a new connection that still does not fit is refused "
             "(`flow_table_full`). Threads share one budget; each evicts among its own connections")
          .default_value("512MiB"),
      option("tls_keylog", OptionType::string,
             "TLS key log (SSLKEYLOGFILE, NSS format) to decrypt HTTPS with: TLS 1.2 and 1.3 connections whose "
             "secrets it holds are parsed like cleartext. A live capture follows the file while it is written. "
             "Secrets a pcapng file carries (editcap --inject-secrets) are used without it. docs/guide/tls.md")
          .default_value(""),
      option("tls_key_wait", OptionType::duration,
             "How long (capture time) a TLS connection's records wait for its secrets to appear in the key log "
             "before it is counted as tls.no_key")
          .default_value("10s"),
      option("tls_key_wait_buffer", OptionType::size,
             "Bytes of a TLS connection held while its secrets are awaited; more: tls.too_large")
          .default_value("1MiB"),
      option("tls_max_keys", OptionType::integer,
             "TLS connections whose secrets are kept from the key log (about 375 bytes each); beyond it those "
             "read first are forgotten (tls.keylog.evicted). Key log lines carry no time, so this bound is "
             "also their expiry: a live capture needs a connection's secrets within tls_key_wait of its handshake; "
             "a capture file whose key log is larger needs a larger value")
          .default_value(100000),
      option("tls_max_sessions", OptionType::integer,
             "TLS 1.2 sessions (session ids and tickets) remembered to decrypt their resumptions; beyond it the "
             "oldest are forgotten (tls.sessions.evicted: a later resumption of one is tls.no_key). The bound is "
             "also their expiry")
          .default_value(100000),
      option("realip_header", OptionType::string,
             "Add this header to requests with the client address, e.g. \"X-Real-IP\". "
             "GoReplay: --input-raw-realip-header")
          .default_value(""),
  };
  def.metrics = {
      {"dropped.truncated", "messages cut by snaplen (kept with allow_incomplete)"},
      {"dropped.gap", "messages with bytes never captured (lost packets; kept with allow_incomplete)"},
      {"dropped.parse_error", "bytes that were not HTTP/1.x, counted once per message they were meant to be"},
      {"dropped.too_large", "messages larger than max_message_size"},
      {"dropped.expired", "messages in progress on a connection that went idle for `expire`"},
      {"dropped.unfinished", "messages in progress when their connection closed or the capture ended"},
      {"dropped.unmatched_response", "responses whose request was not seen (capture started mid-connection)"},
      {"dropped.ambiguous_response",
       "responses after a gap, junk or a mid-stream start whose request the TCP acknowledgement numbers "
       "did not prove; never paired with a guess"},
      {"dropped.ambiguous_framing",
       "requests whose framing a server may read two ways (Content-Length with Transfer-Encoding, several or "
       "listed lengths, a final coding not chunked, folded or spaced framing fields: request smuggling), with "
       "their responses; the rest of their connection's requests is not read"},
      {"dropped.flow_table_full",
       "packets of new connections refused because max_connections are tracked, or because the state of one "
       "more would not fit in memory_budget"},
      {"dropped.budget_exceeded",
       "messages whose bytes were given up to memory_budget (the connections holding the most bytes go first), "
       "and the responses of such requests; their streams stay in sync"},
      {"dropped.stream_reset", "HTTP/2 messages whose stream was reset (RST_STREAM) before they ended"},
      {"dropped.malformed",
       "HTTP/2 streams that are not a valid request or response (pseudo-headers, field names or values, "
       "content-length against DATA, trailers not ending the stream): never emitted as a guess"},
      {"dropped.pushed", "HTTP/2 server pushes (PUSH_PROMISE): the promised exchange is not emitted"},
      {"dropped.decode_error",
       "HTTP/2 messages in progress when their connection could no longer be decoded (a malformed frame, a "
       "header block HPACK refused)"},
      {"dropped.truncated_input",
       "capture files cut short inside a frame (the frames before were read; file and offset logged)"},
      {"dropped.corrupt_input",
       "capture files with a record no reader can walk past (the frames before were read; offset logged)"},
      {"dropped.kernel", "packets the kernel dropped because the capture buffer was full (pcap_stats)"},
      {"dropped.interface", "packets the interface dropped (pcap_stats)"},
      {"packets", "packets captured"},
      {"bytes", "bytes captured, as on the wire"},
      {"packets.not_tcp", "packets of another protocol, ignored"},
      {"packets.fragment", "IP fragments (TCP over fragmented IP is not reassembled)"},
      {"packets.truncated", "packets whose headers were cut by snaplen"},
      {"packets.malformed", "packets with bogus IP/TCP versions or lengths"},
      {"packets.unsupported_encapsulation",
       "part of packets.not_tcp: a tunnel or framing not opened (PPP other than IP, MPLS pseudowires, GRE with "
       "routing or version 1, MACsec, ...)"},
      {"packets.too_deep",
       "part of packets.not_tcp: more than 8 VLAN tags, 8 MPLS labels or 2 tunnels inside each other"},
      {"requests", "requests emitted"},
      {"responses", "responses emitted"},
      {"responses.interim", "1xx interim responses (100 Continue) folded away"},
      {"responses.missing", "requests whose response was never seen (track_response)"},
      {"responses.early",
       "responses begun before their request was whole (an upload answered early); emitted after the request"},
      {"messages.incomplete", "messages emitted marked incomplete (allow_incomplete)"},
      {"connections", "TCP connections tracked"},
      {"connections.midstream", "connections whose start was not seen; parsing began at the next message"},
      {"connections.expired", "connections forgotten after `expire` without packets"},
      {"connections.upgraded", "connections that left HTTP/1.x (101 Switching Protocols, CONNECT)"},
      {"segments.duplicate", "retransmitted or twice-captured segments (loopback on `any`), counted once"},
      {"segments.over_budget", "out-of-order segments not held because max_buffer was reached"},
      {"bytes.overlap", "overlapping bytes discarded (the first copy wins)"},
      {"bytes.gap", "stream bytes never captured"},
      {"bytes.truncated", "payload bytes cut by snaplen"},
      {"buffer.bytes", "out-of-order bytes held now (gauge)"},
      {"memory.bytes", "bytes held now against memory_budget, connection state included (gauge)"},
      {"bytes.evicted", "bytes given up to memory_budget"},
      {"connections.evicted", "times a connection gave up the bytes it held to memory_budget"},
      {"h2.connections", "HTTP/2 connections decoded from their start (prior knowledge or Upgrade: h2c)"},
      {"h2.midstream",
       "connections carrying HTTP/2 frames whose start was not seen: their HPACK state is unknown, so they are "
       "skipped whole"},
      {"h2.streams", "HTTP/2 request streams begun"},
      {"h2.resets", "HTTP/2 RST_STREAM frames"},
      {"h2.goaway", "HTTP/2 GOAWAY frames"},
      {"h2.gaps", "HTTP/2 connections whose decoding stopped at bytes never captured (HPACK state lost)"},
      {"h2.frame_errors", "HTTP/2 connections whose decoding stopped at a malformed frame"},
      {"h2.hpack_errors", "HTTP/2 connections whose decoding stopped at a header block HPACK refused"},
      {"h2.streams_abandoned",
       "HTTP/2 streams given up unfinished (gap, decoding error, connection closed or expired); their messages "
       "are counted in dropped.*, their missing responses in responses.missing"},
      {"tls.connections", "TLS connections begun with a ClientHello"},
      {"tls.decrypted", "TLS connections whose logged secrets were proven on their handshake (its Finished messages "
                        "decrypted): their application data is parsed as HTTP"},
      {"tls.resumed", "part of tls.decrypted: resumed sessions (tickets, session ids, PSK)"},
      {"tls.midstream", "connections carrying TLS records whose ClientHello was not seen: skipped whole"},
      {"tls.no_key", "TLS connections whose secrets the key log never held (within tls_key_wait), or no key log"},
      {"tls.bad_key", "TLS connections with a record that did not authenticate with the logged secret"},
      {"tls.gap", "TLS connections whose decryption stopped at bytes never captured"},
      {"tls.malformed", "TLS connections with a malformed record or handshake message"},
      {"tls.unsupported_version", "SSL 3.0, TLS 1.0 and 1.1 connections: not decrypted"},
      {"tls.unsupported_cipher",
       "TLS connections with a cipher suite doppel does not decrypt; each also counted as "
       "tls.unsupported_cipher.<IANA name>"},
      {"tls.renegotiation", "TLS 1.2 connections renegotiated: decrypted up to the renegotiation"},
      {"tls.early_data", "TLS 1.3 connections with accepted 0-RTT data, which is not decrypted"},
      {"tls.too_large", "TLS connections whose records awaiting their key exceeded tls_key_wait_buffer, or "
                        "given up to memory_budget"},
      {"tls.keylog.lines", "secrets read from the key log (and a pcapng's Decryption Secrets Blocks)"},
      {"tls.keylog.bad_lines", "key log lines with a known label but bad hex or a wrong length: skipped"},
      {"tls.keylog.evicted", "connections' secrets forgotten because tls_max_keys were kept (the oldest first)"},
      {"tls.sessions.evicted",
       "TLS 1.2 sessions forgotten because tls_max_sessions were remembered (the oldest first)"},
      {"table.connections",
       "TCP connections tracked now (gauge); bound: max_connections and memory_budget (new ones refused: "
       "dropped.flow_table_full), expiry: expire"},
      {"table.pending_requests",
       "HTTP/1.x requests awaiting their response now, all connections (gauge); bound: 1,024 per connection "
       "and memory_budget (the oldest given up: responses.missing), expiry: expire (with their connection)"},
      {"table.h2_streams",
       "HTTP/2 streams open now, all connections (gauge); bound: 1,024 per connection (the oldest given up: "
       "dropped.budget_exceeded) and memory_budget, expiry: expire (with their connection)"},
      {"table.tls_awaiting_keys",
       "TLS connections whose records wait for their secrets now (gauge); bound: tls_key_wait_buffer per "
       "connection and memory_budget, expiry: tls_key_wait (then tls.no_key)"},
      {"table.tls_keys",
       "connections whose TLS secrets are kept from the key log now (gauge); bound: tls_max_keys (the oldest "
       "forgotten: tls.keylog.evicted), expiry: the same bound (key log lines carry no time)"},
      {"table.tls_sessions",
       "TLS 1.2 sessions remembered for resumption now (gauge); bound: tls_max_sessions (the oldest forgotten: "
       "tls.sessions.evicted), expiry: the same bound"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    return std::make_unique<RawInput>(parse(options));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins::raw

DOPPEL_PLUGIN(doppel::plugins::raw::raw_input_definition);
