// Plugin `nats` (output): options, their parsing into NatsOutputConfig, and registration.
#include "doppel/plugin.hpp"
#include "nats_output.hpp"

namespace doppel::plugins {
namespace {

std::size_t positive(const Options& options, const char* name, std::int64_t max) {
  auto v = options.integer(name);
  if (v < 1 || v > max) options.fail(name, std::string(name) + " must be between 1 and " + std::to_string(max));
  return static_cast<std::size_t>(v);
}

PluginDefinition nats_output_definition() {
  PluginDefinition def;
  def.name = "nats";
  def.role = Role::output;
  def.description =
      "Publishes messages to a NATS JetStream subject as .gor records, a request together with its original "
      "response, de-duplicated by Nats-Msg-Id";
  def.accepts = KindSet::all();
  def.produces = KindSet{};
  def.options = nats::connection_options();
  std::vector<OptionSpec> own = {
      option("subject", OptionType::string, "Subject messages are published on").default_value("doppel.capture"),
      option("stream", OptionType::string, "JetStream stream that stores the subject").default_value("DOPPEL"),
      option("create_stream", OptionType::boolean,
             "Create the stream when it does not exist; an existing stream must then have the settings below "
             "(else the stage refuses to start)")
          .default_value(false),
      option("replicas", OptionType::integer, "Stream replicas when creating it (1, 3 or 5 in a cluster)")
          .default_value(1),
      option("max_age", OptionType::duration, "Stream: discard messages older than this (default: keep)"),
      option("max_bytes", OptionType::size, "Stream: discard the oldest messages beyond this size (default: no limit)"),
      option("duplicate_window", OptionType::duration,
             "Stream: how long JetStream remembers Nats-Msg-Id values to drop re-published copies")
          .default_value("2m"),
      option("storage", OptionType::string, "Stream storage when creating it").default_value("file").choices({"file", "memory"}),
      option("pair", OptionType::boolean,
             "Hold each request until its original response arrives and publish both in one NATS message, so one "
             "worker gets both (set false when capturing requests only)")
          .default_value(true),
      option("pair_timeout", OptionType::duration,
             "Longest wait for a request's response; then the request goes alone (counted unpaired_requests)")
          .default_value("10s"),
      option("pair_capacity", OptionType::integer,
             "Requests held waiting for their response at most; beyond it the oldest goes alone")
          .default_value(100000),
      option("max_pending", OptionType::integer, "Messages published and not yet acknowledged by the stream at most")
          .default_value(1024),
      option("buffer_size", OptionType::integer,
             "Messages kept until the stream acknowledges them (while servers are unreachable, say); beyond it "
             "`overflow` decides")
          .default_value(100000),
      option("buffer_bytes", OptionType::size, "Bytes kept until acknowledged at most").default_value("256MiB"),
      option("overflow", OptionType::string,
             "When the buffer is full: \"wait\" blocks the stage, so the runtime's queue fills (a file input waits; "
             "a live capture drops, counted as queue_full), or \"drop\" drops here (counted as buffer_full)")
          .default_value("wait")
          .choices({"wait", "drop"}),
      option("ack_timeout", OptionType::duration,
             "Longest wait for the stream's acknowledgement of a publish before publishing it again")
          .default_value("5s"),
  };
  def.options.insert(def.options.end(), own.begin(), own.end());
  def.metrics = {
      {"published", "NATS messages stored by the stream (acknowledged)"},
      {"duplicates", "publishes the stream recognised as duplicates (same Nats-Msg-Id within the window)"},
      {"republished", "publishes not acknowledged in time or refused, published again with the same id"},
      {"paired", "requests published together with their original response"},
      {"unpaired_requests", "requests published alone (no response within pair_timeout)"},
      {"unpaired_responses", "responses published alone (their request was not held)"},
      {"buffered",
       "NATS messages not yet acknowledged (gauge); bound: buffer_size and buffer_bytes (then `overflow`: wait, or "
       "dropped.buffer_full), expiry: none, published again every ack_timeout until the stream has them"},
      {"in_flight", "publishes awaiting acknowledgement (gauge)"},
      {"held", "requests waiting for their response (gauge); the same as table.held_requests, kept for existing "
               "dashboards"},
      {"table.held_requests",
       "requests held by id waiting for their original response now, pair set (gauge); bound: pair_capacity (the "
       "oldest published alone: unpaired_requests), expiry: pair_timeout (unpaired_requests)"},
      {"dropped.buffer_full", "messages dropped because the buffer was full (overflow = \"drop\")"},
      {"dropped.shutdown", "messages dropped while waiting for room during shutdown"},
      {"dropped.unconfirmed", "messages not acknowledged by the stream when the stage stopped"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    NatsOutputConfig config;
    config.connection = nats::parse_connection_options(options, "doppel-agent");
    config.subject = options.string("subject");
    if (config.subject.empty() || config.subject.find_first_of("*> \t") != std::string::npos)
      options.fail("subject", "a publish subject must be non-empty, without wildcards or spaces");
    config.stream.name = options.string("stream");
    if (config.stream.name.empty() || config.stream.name.find_first_of(".*> \t") != std::string::npos)
      options.fail("stream", "a stream name must be non-empty, without '.', '*', '>' or spaces");
    config.stream.create = options.boolean("create_stream");
    auto replicas = options.integer("replicas");
    if (replicas < 1 || replicas > 5) options.fail("replicas", "replicas must be between 1 and 5");
    config.stream.replicas = static_cast<int>(replicas);
    if (options.has("max_age")) config.stream.max_age = options.duration("max_age");
    if (options.has("max_bytes")) config.stream.max_bytes = static_cast<std::int64_t>(options.size("max_bytes"));
    config.stream.duplicate_window = options.duration("duplicate_window");
    if (config.stream.duplicate_window.count() <= 0)
      options.fail("duplicate_window", "duplicate_window must be positive");
    config.stream.file_storage = options.string("storage") == "file";
    config.pair = options.boolean("pair");
    config.pair_timeout = options.duration("pair_timeout");
    if (config.pair_timeout.count() <= 0) options.fail("pair_timeout", "pair_timeout must be positive");
    config.pair_capacity = positive(options, "pair_capacity", 100000000);
    config.max_pending = positive(options, "max_pending", 1000000);
    config.buffer_messages = positive(options, "buffer_size", 100000000);
    config.buffer_bytes = options.size("buffer_bytes");
    if (config.buffer_bytes == 0) options.fail("buffer_bytes", "buffer_bytes must be positive");
    config.wait_when_full = options.string("overflow") == "wait";
    config.ack_timeout = options.duration("ack_timeout");
    if (config.ack_timeout < std::chrono::milliseconds(1)) options.fail("ack_timeout", "ack_timeout must be 1ms or more");
    return std::make_unique<NatsOutput>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::nats_output_definition);
