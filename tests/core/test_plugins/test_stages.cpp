// Stages that exist only to test the runtime: canned input, judging filter, a filter that
// throws, a pass-through middleware, collecting outputs. Loaded like any plugin library.
#include <fstream>
#include <mutex>
#include <stdexcept>

#include "doppel/plugin.hpp"

namespace doppel::test_plugins {
namespace {

// Emits its list `repeat` times; with repeat > 1, ids get a "-N" suffix per round.
class CannedInput : public Stage {
 public:
  CannedInput(std::vector<Message> messages, std::int64_t repeat, bool live, std::size_t batch)
      : messages_(std::move(messages)), repeat_(repeat), live_(live), batch_(batch) {}
  void run(std::stop_token stop) override {
    std::vector<MessagePtr> pending;
    for (std::int64_t r = 0; r < repeat_; ++r) {
      for (const auto& m : messages_) {
        if (stop.stop_requested()) return;
        Message copy(m);
        if (copy.id.empty()) copy.id = new_message_id();
        else if (repeat_ > 1) copy.id += "-" + std::to_string(r);
        copy.timestamp_ns = now_ns();
        if (batch_ <= 1) {
          context().emit(share(std::move(copy)));
          continue;
        }
        pending.push_back(share(std::move(copy)));
        if (pending.size() == batch_) context().emit_batch(pending);
      }
    }
    if (!pending.empty()) context().emit_batch(pending);
  }
  OverflowPolicy overflow_policy() const override { return live_ ? OverflowPolicy::drop : OverflowPolicy::block; }
  bool dry_run(std::ostream& out) override {
    out << "  " << messages_.size() * static_cast<std::size_t>(repeat_) << " canned messages\n";
    return true;
  }

 private:
  std::vector<Message> messages_;
  std::int64_t repeat_;
  bool live_;
  std::size_t batch_;  // > 1: emitted with emit_batch, this many at a time
};

PluginDefinition canned_input() {
  PluginDefinition def;
  def.name = "canned";
  def.role = Role::input;
  def.description = "Emits the messages listed in its options";
  def.produces = KindSet::http();
  def.options = {
      option("messages", OptionType::table_list, "Messages to emit")
          .default_value(Value::array({}))
          .fields({option("kind", OptionType::string, "kind").default_value("request"),
                   option("id", OptionType::string, "id").default_value(""),
                   option("payload", OptionType::string, "payload").required()}),
      option("live", OptionType::boolean, "Drop instead of waiting on a full queue").default_value(false),
      option("repeat", OptionType::integer, "Emit the list this many times").default_value(1),
      option("batch", OptionType::integer, "Above 1: emit_batch this many at a time").default_value(1),
  };
  def.create_stage = [](const Options& o) -> std::unique_ptr<Stage> {
    std::vector<Message> messages;
    for (const auto& t : o.tables("messages"))
      messages.emplace_back(*parse_kind(t.string("kind")), t.string("id"), 0, t.string("payload"));
    return std::make_unique<CannedInput>(std::move(messages), o.integer("repeat"), o.boolean("live"),
                                         static_cast<std::size_t>(o.integer("batch")));
  };
  return def;
}

class KeepFilter : public Stage {
 public:
  explicit KeepFilter(std::string needle) : needle_(std::move(needle)) {}
  void process(const MessagePtr& m) override {
    if (m->kind != Kind::request) throw std::logic_error("a requests-only filter saw a response");
    if (m->payload.find(needle_) != std::string::npos) context().emit(m);
    else context().drop("not_kept");
  }

 private:
  std::string needle_;
};

PluginDefinition keep_filter() {
  PluginDefinition def;
  def.name = "keep";
  def.role = Role::filter;
  def.description = "Keeps requests containing a string";
  def.accepts = KindSet::http();
  def.passes_through = true;
  def.requests_only = true;
  def.options = {option("contains", OptionType::string, "Substring to keep").required()};
  def.create_stage = [](const Options& o) -> std::unique_ptr<Stage> {
    return std::make_unique<KeepFilter>(o.string("contains"));
  };
  return def;
}

class ExplodingFilter : public Stage {
 public:
  void process(const MessagePtr& m) override {
    if (m->payload.find("boom") != std::string::npos) throw std::runtime_error("boom in payload");
    context().emit(m);
  }
};

PluginDefinition exploding_filter() {
  PluginDefinition def;
  def.name = "explode";
  def.role = Role::filter;
  def.description = "Throws on payloads containing boom";
  def.accepts = KindSet::http();
  def.passes_through = true;
  def.options = {
      option("fail_configure", OptionType::boolean, "Throw from the factory").default_value(false),
      option("limit", OptionType::integer, "Must be positive").default_value(1),
  };
  def.create_stage = [](const Options& o) -> std::unique_ptr<Stage> {
    if (o.boolean("fail_configure")) throw std::runtime_error("cannot reach the moon");
    if (o.integer("limit") <= 0) o.fail("limit", "limit must be positive");
    return std::make_unique<ExplodingFilter>();
  };
  return def;
}

class Relay : public Stage {
 public:
  void process(const MessagePtr& m) override { context().emit(m); }
};

PluginDefinition relay_middleware() {
  PluginDefinition def;
  def.name = "relay";
  def.role = Role::middleware;
  def.description = "Passes every HTTP message on";
  def.accepts = KindSet::http();
  def.passes_through = true;
  def.create_stage = [](const Options&) -> std::unique_ptr<Stage> { return std::make_unique<Relay>(); };
  return def;
}

// Records "KIND ID" lines to `path` at stop; with track = true it answers each request with a
// replay of the same id (like an HTTP output with track_response).
class CollectOutput : public Stage {
 public:
  CollectOutput(std::string path, bool track) : path_(std::move(path)), track_(track) {}
  void process(const MessagePtr& m) override {
    std::lock_guard lock(mutex_);
    lines_.push_back(std::string(kind_name(m->kind)) + " " + m->id + " " + m->meta.stage);
    if (track_ && m->kind == Kind::request)
      context().emit(share(Message(Kind::replay, m->id, now_ns(), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")));
  }
  void stop() override {
    std::ofstream out(path_);
    for (const auto& l : lines_) out << l << "\n";
  }
  std::optional<KindSet> produces() const override { return track_ ? KindSet{Kind::replay} : KindSet{}; }

 private:
  std::string path_;
  bool track_;
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

PluginDefinition collect_output() {
  PluginDefinition def;
  def.name = "collect";
  def.role = Role::output;
  def.description = "Writes the kind and id of every message to a file at stop";
  def.accepts = KindSet::http();
  def.produces = KindSet{Kind::replay};
  def.options = {option("path", OptionType::string, "Where to write").required(),
                 option("track", OptionType::boolean, "Emit a replay per request").default_value(false)};
  def.create_stage = [](const Options& o) -> std::unique_ptr<Stage> {
    return std::make_unique<CollectOutput>(o.string("path"), o.boolean("track"));
  };
  return def;
}

PluginDefinition verdict_sink() {
  PluginDefinition def;
  def.name = "verdicts";
  def.role = Role::output;
  def.description = "Accepts verdicts only";
  def.accepts = KindSet{Kind::verdict};
  def.create_stage = [](const Options&) -> std::unique_ptr<Stage> { return std::make_unique<Relay>(); };
  return def;
}

PluginDefinition request_sink() {
  PluginDefinition def = collect_output();
  def.name = "requests";
  def.description = "Like collect, but accepts requests only";
  def.accepts = KindSet{Kind::request};
  return def;
}

PluginDefinition everything_sink() {
  PluginDefinition def = collect_output();
  def.name = "everything";
  def.description = "Like collect, but accepts every kind";
  def.accepts = KindSet::all();
  return def;
}

}  // namespace
}  // namespace doppel::test_plugins

DOPPEL_PLUGIN(doppel::test_plugins::canned_input, doppel::test_plugins::keep_filter,
              doppel::test_plugins::exploding_filter, doppel::test_plugins::relay_middleware,
              doppel::test_plugins::collect_output, doppel::test_plugins::verdict_sink,
              doppel::test_plugins::request_sink, doppel::test_plugins::everything_sink);
