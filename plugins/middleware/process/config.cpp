// Plugin `process` (middleware): options, their parsing into ProcessMiddlewareConfig, and registration.
#include "doppel/child_process.hpp"
#include "doppel/plugin.hpp"
#include "middleware_process.hpp"

namespace doppel::plugins {
namespace {

PluginDefinition process_middleware_definition() {
  PluginDefinition def;
  def.name = "process";
  def.role = Role::middleware;
  def.description =
      "Runs an external program speaking GoReplay's middleware protocol (hex lines on stdin/stdout); emits what it "
      "writes back";
  def.accepts = KindSet::http();
  def.produces = KindSet::http();
  def.passes_through = true;
  def.options = {
      option("command", OptionType::string_list,
             "The program: a string is split on spaces, like GoReplay's --middleware \"node mw.js\"; an array is "
             "the argument list as is (for arguments with spaces)")
          .required(),
      option("restart", OptionType::string,
             "When the program exits: start it again after a backoff (always), or drop what would go to it (never)")
          .default_value("always")
          .choices({"always", "never"}),
      option("restart_backoff", OptionType::duration,
             "First wait before a restart; doubles after each quick exit (reset once it ran 10s)")
          .default_value("100ms"),
      option("restart_backoff_max", OptionType::duration, "Longest wait before a restart").default_value("10s"),
      option("max_line", OptionType::size,
             "Longest line the program may write back (hex: twice the message size); longer ones are skipped "
             "(line_too_long)")
          .default_value("256MiB"),
      option("return_timeout", OptionType::duration,
             "After this long with nothing sent to or written back by the program, messages it did not write back "
             "count as dropped (not_returned)")
          .default_value("2s"),
      option("order", OptionType::string,
             "What order the program gets each id's messages in. per_id: request, then original response, then "
             "replays (GoReplay middleware registers an id's replay callback when it sees the original response); "
             "one that comes early is held. arrival: as they come. auto: per_id when original responses can reach "
             "this stage (an input with track_response), else arrival")
          .default_value("auto")
          .choices({"auto", "per_id", "arrival"}),
      option("hold_max", OptionType::integer,
             "per_id: most messages held at once; when full, the oldest goes on out of order (held_overflow)")
          .default_value(10000),
      option("hold_timeout", OptionType::duration,
             "per_id: longest a message waits for its id's earlier messages; then it goes on anyway (held_expired)")
          .default_value("5s"),
  };
  def.metrics = {
      {"sent", "messages written to the program"},
      {"returned", "messages the program wrote back"},
      {"restarts", "times the program was started again"},
      {"dropped.not_returned", "messages the program did not write back (middleware filtered them)"},
      {"dropped.lost_in_restart", "messages in flight when the program exited"},
      {"dropped.middleware_exited", "messages for a program that exited with restart = \"never\""},
      {"dropped.shutdown", "messages that arrived while stopping"},
      {"failed.bad_line", "lines written back that are not hex of a valid message"},
      {"failed.line_too_long", "lines written back longer than max_line"},
      {"held", "messages held back until their id's earlier messages had gone to the program (order = per_id)"},
      {"held_expired", "held messages given to the program after hold_timeout without their id's earlier ones"},
      {"held_overflow", "held messages given to the program early because hold_max messages were held"},
      {"held_flushed", "held messages given to the program while draining (their earlier ones never came)"},
      {"holding", "messages held now (gauge); bound: hold_max (held_overflow), expiry: hold_timeout (held_expired)"},
      {"ids_forgotten",
       "ids forgotten before their time because 16 x hold_max were remembered (a later message of one is not "
       "held for its earlier ones)"},
      {"table.ids",
       "ids whose order is followed now, order = per_id (gauge); bound: 16 x hold_max (the oldest forgotten: "
       "ids_forgotten), expiry: 12 x hold_timeout after the id's first message"},
      {"table.leases",
       "messages sent whose source waits to be acknowledged (a NATS input's) until the program writes them back "
       "(gauge); bound: the source's own (max_ack_pending), expiry: return_timeout (then dropped.not_returned)"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    ProcessMiddlewareConfig config;
    auto command = split_command(options.strings("command"));
    if (command.empty() || command[0].empty()) options.fail("command", "command must name a program");
    config.argv = std::move(command);
    config.restart = options.string("restart") == "always";
    config.backoff = options.duration("restart_backoff");
    config.backoff_max = options.duration("restart_backoff_max");
    if (config.backoff.count() <= 0) options.fail("restart_backoff", "restart_backoff must be positive");
    if (config.backoff_max < config.backoff)
      options.fail("restart_backoff_max", "restart_backoff_max must not be shorter than restart_backoff");
    config.max_line = options.size("max_line");
    config.return_timeout = options.duration("return_timeout");
    if (config.return_timeout.count() <= 0) options.fail("return_timeout", "return_timeout must be positive");
    auto order = options.string("order");
    using Order = ProcessMiddlewareConfig::Order;
    config.order = order == "per_id" ? Order::per_id : order == "arrival" ? Order::arrival : Order::automatic;
    auto hold_max = options.integer("hold_max");
    if (hold_max < 1) options.fail("hold_max", "hold_max must be at least 1");
    config.hold_max = static_cast<std::size_t>(hold_max);
    config.hold_timeout = options.duration("hold_timeout");
    if (config.hold_timeout.count() <= 0) options.fail("hold_timeout", "hold_timeout must be positive");
    return std::make_unique<ProcessMiddleware>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::process_middleware_definition);
