// Plugin `null` (output): counts what reaches it and discards it, to measure a pipeline
// without the cost of writing (GoReplay: --output-null).
#include "doppel/plugin.hpp"

namespace doppel::plugins {
namespace {

class NullOutput : public Stage {
 public:
  void start(StageContext& context) override {
    Stage::start(context);
    for (Kind kind : {Kind::request, Kind::response, Kind::replay, Kind::verdict})
      by_kind_[static_cast<int>(kind)] = &context.counter(std::string(kind_name(kind)) + "s");
    bytes_ = &context.counter("payload_bytes");
  }
  void process(const MessagePtr& message) override {
    if (Counter* c = by_kind_[static_cast<int>(message->kind) & 7]) c->add();
    bytes_->add(message->payload.size());
  }

 private:
  Counter* by_kind_[8] = {};
  Counter* bytes_ = nullptr;
};

PluginDefinition null_output_definition() {
  PluginDefinition def;
  def.name = "null";
  def.role = Role::output;
  def.description = "Counts messages by kind and discards them (GoReplay: --output-null)";
  def.accepts = KindSet::all();
  def.metrics = {
      {"requests", "requests discarded"},           {"responses", "original responses discarded"},
      {"replays", "replayed responses discarded"},  {"verdicts", "comparator verdicts discarded"},
      {"payload_bytes", "payload bytes discarded"},
  };
  def.create_stage = [](const Options&) -> std::unique_ptr<Stage> { return std::make_unique<NullOutput>(); };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::null_output_definition);
