// Example plugin: stamps a header on every request, e.g. so the replay target can tell
// shadow traffic from real traffic. Build it out of tree:
//   cmake -S . -B build -DCMAKE_PREFIX_PATH=<doppel install prefix> && cmake --build build
// and load it with `doppel --plugin-dir build/plugins run pipeline.toml`.
#include <doppel/plugin.hpp>

namespace stamp_header {
namespace {

struct Config {
  std::string name;
  std::string value;
};

class StampHeader : public doppel::Stage {
 public:
  explicit StampHeader(Config config) : config_(std::move(config)) {}

  void process(const doppel::MessagePtr& message) override {
    if (message->kind != doppel::Kind::request) {
      context().emit(message);
      return;
    }
    doppel::Message stamped(*message);
    stamped.payload = doppel::http_set_header(message->payload, config_.name, config_.value);
    context().counter("stamped").add();
    context().emit(doppel::share(std::move(stamped)));
  }

 private:
  Config config_;
};

doppel::PluginDefinition definition() {
  doppel::PluginDefinition def;
  def.name = "stamp_header";
  def.role = doppel::Role::filter;
  def.description = "Sets a header on every request (example out-of-tree plugin)";
  def.accepts = doppel::KindSet::http();
  def.passes_through = true;
  def.options = {
      doppel::option("name", doppel::OptionType::string, "Header to set").default_value("X-Doppel-Shadow"),
      doppel::option("value", doppel::OptionType::string, "Its value").default_value("1"),
  };
  def.metrics = {{"stamped", "requests that got the header"}};
  def.create_stage = [](const doppel::Options& options) -> std::unique_ptr<doppel::Stage> {
    if (options.string("name").find_first_of(": \r\n") != std::string::npos)
      options.fail("name", "a header name cannot contain ':', spaces or line breaks");
    return std::make_unique<StampHeader>(Config{options.string("name"), options.string("value")});
  };
  return def;
}

}  // namespace
}  // namespace stamp_header

DOPPEL_PLUGIN(stamp_header::definition);
