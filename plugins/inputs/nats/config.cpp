// Plugin `nats` (input): options, their parsing into NatsInputConfig, and registration.
#include "doppel/plugin.hpp"
#include "nats_input.hpp"

namespace doppel::plugins {
namespace {

void parse_deliver(const Options& options, NatsInputConfig& config) {
  std::string deliver = options.string("deliver");
  if (deliver == "all") {
    config.deliver = DeliverFrom::all;
  } else if (deliver == "new") {
    config.deliver = DeliverFrom::new_only;
  } else if (deliver.rfind("since:", 0) == 0) {
    auto when = parse_timestamp(std::string_view(deliver).substr(6));
    if (!when)
      options.fail("deliver", "\"" + deliver.substr(6) +
                                  "\" is not a UTC time such as 2026-11-25T10:00Z or 2026-11-25T10:00:00+01:00");
    config.deliver = DeliverFrom::since;
    config.since_ns = *when;
  } else {
    options.fail("deliver", "expected \"all\", \"new\" or \"since:2026-11-25T10:00Z\", got \"" + deliver + "\"");
  }
}

PluginDefinition nats_input_definition() {
  PluginDefinition def;
  def.name = "nats";
  def.role = Role::input;
  def.description =
      "Consumes .gor records from a NATS JetStream durable pull consumer shared by a group of workers "
      "(each message to one worker, acknowledged once the pipeline is done with it)";
  def.produces = KindSet::all();
  def.options = nats::connection_options();
  std::vector<OptionSpec> own = {
      option("subject", OptionType::string, "Subject the agents publish on").default_value("doppel.capture"),
      option("stream", OptionType::string, "JetStream stream that stores the subject").default_value("DOPPEL"),
      option("durable", OptionType::string,
             "Durable consumer shared by the workers of one group: each message goes to one of them")
          .default_value("replayers"),
      option("deliver", OptionType::string,
             "Where a new durable consumer starts: \"all\" (everything the stream holds), \"new\" (messages "
             "published from now on) or \"since:2026-11-25T10:00Z\" (UTC time or with an offset)")
          .default_value("all"),
      option("ack_wait", OptionType::duration,
             "A message neither acknowledged nor reported in progress within this time (its worker died) is "
             "redelivered to another worker; a live worker reports what it holds every ack_wait/3")
          .default_value("30s"),
      option("max_ack_pending", OptionType::integer,
             "Messages handed to the group and not yet acknowledged at most (new consumers only)")
          .default_value(1000),
      option("max_deliver", OptionType::integer, "Deliveries of one message at most; -1 for no limit (new consumers only)")
          .default_value(-1),
      option("batch", OptionType::integer, "Messages fetched per pull request").default_value(64),
      option("speed", OptionType::rate,
             "Pace requests by their recorded timestamps: \"100%\" as recorded, \"200%\" twice as fast; \"100/s\" "
             "evenly at that rate per worker")
          .default_value("100%"),
      option("max_speed", OptionType::boolean, "Emit as fast as the pipeline takes messages, ignoring timestamps")
          .default_value(false),
  };
  def.options.insert(def.options.end(), own.begin(), own.end());
  def.metrics = {
      {"received", "NATS messages fetched (each a record, or a request with its response)"},
      {"acked", "NATS messages acknowledged once the pipeline released their records and all derived from them"},
      {"ack_failed", "acknowledgements the client could not send (the server redelivers those messages)"},
      {"in_pipeline", "NATS messages handed to the pipeline and not yet released, i.e. not acknowledged (gauge)"},
      {"in_progress", "\"still working\" notices sent for messages held longer than ack_wait/3"},
      {"redelivered", "messages delivered more than once (a worker died or stopped before acknowledging)"},
      {"returned", "fetched messages handed back (nak) because the worker was stopping"},
      {"lag_ms", "how far behind its recorded schedule the last request was emitted, in ms (gauge)"},
      {"stream_pending", "messages in the stream not yet delivered to the group (gauge)"},
      {"dropped.invalid_record", "messages that are not .gor records (terminated, not redelivered)"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    NatsInputConfig config;
    config.connection = nats::parse_connection_options(options, "doppel-worker");
    config.subject = options.string("subject");
    if (config.subject.empty() || config.subject.find_first_of(" \t") != std::string::npos)
      options.fail("subject", "the subject must be non-empty, without spaces");
    config.stream = options.string("stream");
    if (config.stream.empty() || config.stream.find_first_of(".*> \t") != std::string::npos)
      options.fail("stream", "a stream name must be non-empty, without '.', '*', '>' or spaces");
    config.durable = options.string("durable");
    if (config.durable.empty() || config.durable.find_first_of(".*> \t") != std::string::npos)
      options.fail("durable", "a durable name must be non-empty, without '.', '*', '>' or spaces");
    parse_deliver(options, config);
    config.ack_wait = options.duration("ack_wait");
    if (config.ack_wait < std::chrono::seconds(1)) options.fail("ack_wait", "ack_wait must be 1s or more");
    config.max_ack_pending = options.integer("max_ack_pending");
    if (config.max_ack_pending < 1) options.fail("max_ack_pending", "max_ack_pending must be positive");
    config.max_deliver = options.integer("max_deliver");
    if (config.max_deliver == 0 || config.max_deliver < -1)
      options.fail("max_deliver", "max_deliver must be positive or -1");
    auto batch = options.integer("batch");
    if (batch < 1 || batch > 10000) options.fail("batch", "batch must be between 1 and 10000");
    config.batch = static_cast<int>(batch);
    config.pacing.max_speed = options.boolean("max_speed");
    Rate speed = options.rate("speed");
    if (!(speed.value > 0)) options.fail("speed", "the speed must be above zero (use max_speed = true for no waiting)");
    if (speed.unit == Rate::Unit::percent)
      config.pacing.speed_factor = speed.value / 100.0;
    else
      config.pacing.fixed_rate = speed.value;
    return std::make_unique<NatsInput>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::nats_input_definition);
