// Plugin `http` (output): options, their parsing into HttpOutputConfig, and registration.
#include "doppel/plugin.hpp"
#include "http_output.hpp"

namespace doppel::plugins {
namespace {

void parse_tls(const Options& options, HttpOutputConfig& config) {
  TlsClientConfig& tls = config.tls;
  tls.skip_verify = options.boolean("tls_skip_verify");
  for (const char* name : {"tls_ca", "tls_cert", "tls_key", "tls_server_name"}) {
    if (options.has(name) && !config.target.tls)
      options.fail(name, std::string(name) + " applies to https:// targets only; url is http://");
  }
  if (options.has("tls_ca")) {
    if (tls.skip_verify) options.fail("tls_ca", "tls_ca has no effect with tls_skip_verify");
    tls.ca_path = options.string("tls_ca");
  }
  if (options.has("tls_cert") && !options.has("tls_key"))
    options.fail("tls_cert", "tls_cert needs tls_key, the certificate's private key");
  if (options.has("tls_key") && !options.has("tls_cert"))
    options.fail("tls_key", "tls_key needs tls_cert, the certificate it belongs to");
  if (options.has("tls_cert")) {
    tls.cert_path = options.string("tls_cert");
    tls.key_path = options.string("tls_key");
  }
  if (options.has("tls_server_name")) {
    tls.server_name = options.string("tls_server_name");
    if (!is_valid_server_name(tls.server_name))
      options.fail("tls_server_name", "tls_server_name must be a DNS name or an IP address, got " +
                                          quote_for_message(tls.server_name));
  }
  if (!config.target.tls) return;
  // Loaded here so that `doppel validate` finds an unreadable file or a key that does not
  // match, rather than the first connection.
  try {
    tls.context = make_tls_client_context(tls);
  } catch (const TlsSetupError& e) {
    options.fail(e.option(), e.what());
  }
}

PluginDefinition http_output_definition() {
  PluginDefinition def;
  def.name = "http";
  def.role = Role::output;
  def.description =
      "Replays requests to an HTTP(S) target over keep-alive connections; with track_response emits the "
      "responses as `replay`";
  def.accepts = KindSet{Kind::request};
  def.produces = KindSet{Kind::replay};
  def.options = {
      option("url", OptionType::string,
             "Target, http://host[:port][/base] or https://...; a base path is prefixed to every request target "
             "(\"/base\" + \"/a?b\" -> \"/base/a?b\"). GoReplay: --output-http")
          .required(),
      option("allow_replay_to_capture", OptionType::boolean,
             "Allow url to be the service a live capture feeding this output captures (an address of this "
             "machine, or the capture's host, on a captured port). Refused at validation otherwise: production "
             "traffic replayed into production doubles every write")
          .default_value(false),
      option("replay_writes", OptionType::boolean,
             "Say that the target may take every method: without it, and without a `method` filter upstream, "
             "`doppel validate` warns that POST, PUT, PATCH and DELETE are replayed")
          .default_value(false),
      option("protocol", OptionType::string,
             "HTTP version of the replay. \"auto\": requests captured over HTTP/2 (meta proto = h2) go out over "
             "HTTP/2 while the target speaks it (h2c with prior knowledge for http://, ALPN for https://), the rest "
             "over HTTP/1.1; a target that answers the HTTP/2 preface as HTTP/1.1, or picks http/1.1 in ALPN, gets "
             "everything over HTTP/1.1 (logged once). \"h2\": every request over HTTP/2, a target that does not "
             "speak it is an error per request (no_h2). \"h1\": every request over HTTP/1.1")
          .default_value("auto")
          .choices({"auto", "h1", "h2"}),
      option("h2_max_streams", OptionType::integer,
             "Requests at once on one HTTP/2 connection (fewer when the target's SETTINGS_MAX_CONCURRENT_STREAMS "
             "says so); beyond them another connection opens, within `workers`")
          .default_value(100),
      option("original_host", OptionType::boolean,
             "Send the captured Host header instead of the target's. GoReplay: --http-original-host")
          .default_value(false),
      option("workers", OptionType::integer,
             "Connections to the target, i.e. requests in flight at most (each keeps alive). Over HTTP/2: requests "
             "in flight at most, multiplexed as streams over as few connections as h2_max_streams allows. GoReplay: "
             "--output-http-workers")
          .default_value(64),
      option("queue_size", OptionType::integer,
             "Requests waiting for a free connection; beyond it `overflow` decides. Bounds memory when the target "
             "is slow or down. GoReplay: --output-http-queue-len")
          .default_value(10000),
      option("overflow", OptionType::string,
             "When the queue is full: \"wait\" for room (back-pressure, nothing lost) or \"drop\" the request "
             "(counted as queue_full). \"auto\" follows what feeds the stage: wait behind file and NATS inputs, "
             "drop behind a live capture")
          .default_value("auto")
          .choices({"auto", "wait", "drop"}),
      option("timeout", OptionType::duration,
             "Longest wait for a response, from sending the request to its last byte. GoReplay: "
             "--output-http-timeout")
          .default_value("5s"),
      option("connect_timeout", OptionType::duration, "Longest wait to resolve, connect and finish a TLS handshake")
          .default_value("2s"),
      option("tls_skip_verify", OptionType::boolean,
             "Accept any certificate from an https target (self-signed staging hosts). GoReplay: "
             "--output-http-skip-verify")
          .default_value(false),
      option("tls_ca", OptionType::string,
             "CA certificates the target's certificate must chain to, instead of the system's: a PEM file (may hold "
             "several) or a directory of hashed names (`openssl rehash`). Relative paths are relative to the "
             "directory doppel runs in"),
      option("tls_cert", OptionType::string,
             "Client certificate chain (PEM) presented to a target that asks for one (mutual TLS); needs tls_key"),
      option("tls_key", OptionType::string,
             "Private key (PEM, unencrypted) of tls_cert; checked against the certificate at validation"),
      option("tls_server_name", OptionType::string,
             "Name sent as SNI and required in the target's certificate, instead of the url's host (replay to "
             "https://10.0.0.5:8443 as api.example.com). The Host header is not changed. Without it an IP address "
             "in the url is checked against the certificate's IP addresses"),
      option("track_response", OptionType::boolean,
             "Emit each response (or the error in its place) as a `replay` message with the request's id. "
             "GoReplay: --output-http-track-response")
          .default_value(false),
      option("io_threads", OptionType::integer, "Threads doing this output's network I/O").default_value(1),
      option("max_response_size", OptionType::size,
             "Largest response kept; a larger one is an error (response_too_large)")
          .default_value("64MiB"),
      option("session", OptionType::string,
             "Session-aware replay: \"connection\" (the captured TCP connection), \"header:NAME\", "
             "\"cookie:NAME\" or \"param:NAME\" (a query parameter). A session's requests go out in captured "
             "order on one connection, each after the previous response; sessions run in parallel, at most "
             "`workers` at once. Unset: every request replays freely over the pool"),
      option("max_sessions", OptionType::integer,
             "Sessions tracked at once; a new one beyond it takes the place of the one idle the longest "
             "(sessions.evicted), or waits/drops as `overflow` says when none is idle (session_limit)")
          .default_value(10000),
      option("session_idle_timeout", OptionType::duration,
             "A session without a request for this long is forgotten and its connection closed (sessions.expired)")
          .default_value("60s"),
  };
  def.metrics = {
      {"sent", "requests handed to a connection"},
      {"responses", "complete responses received"},
      {"in_flight", "requests on a connection now (gauge)"},
      {"queued", "requests waiting for a connection (gauge)"},
      {"dropped.queue_full",
       "requests dropped because the queue was full (overflow = \"drop\", or \"auto\" behind a live capture)"},
      {"dropped.unparseable_request", "messages that are not a parseable HTTP request"},
      {"dropped.shutdown", "requests abandoned when the stage stopped"},
      {"dropped.session_limit", "requests of a new session while max_sessions were all busy (overflow = \"drop\")"},
      {"sessions.started", "sessions begun (session set)"},
      {"sessions.expired", "sessions forgotten after session_idle_timeout without a request"},
      {"sessions.evicted", "idle sessions forgotten early to make room for a new one (max_sessions)"},
      {"sessions.reconnects",
       "a session's requests moved to a new connection (it broke, the target closed it, or it was handed to a "
       "waiting session)"},
      {"sessions.no_key", "requests without a session key (header absent, no connection id), replayed freely"},
      {"sessions", "sessions tracked now (gauge); the same as table.sessions, kept for existing dashboards"},
      {"table.sessions",
       "sessions tracked now, session set (gauge); bound: max_sessions (the one idle the longest forgotten: "
       "sessions.evicted; none idle: overflow decides, dropped.session_limit), expiry: session_idle_timeout "
       "(sessions.expired)"},
      {"sessions.active", "sessions with a request on their connection now (gauge)"},
      {"failed.refused", "the target refused the connection"},
      {"failed.timeout", "no connection within connect_timeout or no complete response within timeout"},
      {"failed.reset", "the connection broke while the request or response was on it"},
      {"failed.tls", "TLS handshake failure other than a rejected certificate"},
      {"failed.tls_verify",
       "the target's certificate was rejected: untrusted, expired, or not for the name (meta.error says why)"},
      {"failed.dns", "the target host name did not resolve"},
      {"failed.connect", "other connection failures (unreachable network, ...)"},
      {"failed.bad_response",
       "the target answered something that is not HTTP/1.x, or a malformed HTTP/2 response (meta.error says why)"},
      {"failed.response_too_large", "a response larger than max_response_size"},
      {"failed.stream_reset", "HTTP/2: the target reset the stream (meta.error \"reset: <error code>\")"},
      {"failed.no_h2", "protocol = \"h2\": the target does not speak HTTP/2 (no SETTINGS, or ALPN chose otherwise)"},
      {"failed.bad_request", "HTTP/2: the request could not be submitted as a stream"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    HttpOutputConfig config;
    std::string error;
    auto target = parse_target_url(options.string("url"), error);
    if (!target) options.fail("url", error);
    config.target = std::move(*target);
    std::string protocol = options.string("protocol");
    config.protocol = protocol == "h1"   ? ReplayProtocol::h1
                      : protocol == "h2" ? ReplayProtocol::h2
                                         : ReplayProtocol::automatic;
    auto max_streams = options.integer("h2_max_streams");
    if (max_streams < 1 || max_streams > 100000) options.fail("h2_max_streams", "h2_max_streams must be between 1 and 100000");
    config.h2_max_streams = static_cast<std::size_t>(max_streams);
    config.original_host = options.boolean("original_host");
    auto workers = options.integer("workers");
    if (workers < 1 || workers > 100000) options.fail("workers", "workers must be between 1 and 100000");
    config.workers = static_cast<std::size_t>(workers);
    auto queue = options.integer("queue_size");
    if (queue < 0) options.fail("queue_size", "queue_size must not be negative");
    config.queue_size = static_cast<std::size_t>(queue);
    config.overflow_follows_input = options.string("overflow") == "auto";
    config.wait_when_full = options.string("overflow") == "wait";
    config.timeout = options.duration("timeout");
    config.connect_timeout = options.duration("connect_timeout");
    if (config.timeout.count() <= 0) options.fail("timeout", "timeout must be positive");
    if (config.connect_timeout.count() <= 0) options.fail("connect_timeout", "connect_timeout must be positive");
    parse_tls(options, config);
    config.track_response = options.boolean("track_response");
    config.max_response_size = options.size("max_response_size");
    auto io_threads = options.integer("io_threads");
    if (io_threads < 1 || io_threads > 64) options.fail("io_threads", "io_threads must be between 1 and 64");
    config.io_threads = static_cast<std::size_t>(io_threads);
    if (options.has("session")) {
      auto session = parse_session_key(options.string("session"), &error);
      if (!session) options.fail("session", error);
      config.session = std::move(*session);
    }
    auto max_sessions = options.integer("max_sessions");
    if (max_sessions < 1) options.fail("max_sessions", "max_sessions must be at least 1");
    config.max_sessions = static_cast<std::size_t>(max_sessions);
    config.session_idle_timeout = options.duration("session_idle_timeout");
    if (config.session_idle_timeout.count() <= 0)
      options.fail("session_idle_timeout", "session_idle_timeout must be positive");
    return std::make_unique<HttpOutput>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::http_output_definition);
