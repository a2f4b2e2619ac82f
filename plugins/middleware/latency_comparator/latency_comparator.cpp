// Comparator `latency`: the replay was not much slower than the original
// (replay latency <= factor x original latency + slack).
#include <chrono>
#include <string>

#include "doppel/plugin.hpp"
#include "doppel/units.hpp"

namespace doppel::plugins {
namespace {

class LatencyComparator : public Comparator {
 public:
  LatencyComparator(double factor, std::chrono::nanoseconds slack) : factor_(factor), slack_(slack) {}

  std::vector<Difference> compare(const Exchange& e) const override {
    if (!e.original || !e.replay) return {};  // the join reports the missing side itself
    auto original = std::chrono::nanoseconds(e.original->latency_ns);
    auto replay = std::chrono::nanoseconds(e.replay->latency_ns);
    double limit = factor_ * static_cast<double>(original.count()) + static_cast<double>(slack_.count());
    if (static_cast<double>(replay.count()) <= limit) return {};
    return {{"latency", "slower", format_duration(original),
             format_duration(replay) + " (limit " +
                 format_duration(std::chrono::nanoseconds(static_cast<std::int64_t>(limit))) + ")"}};
  }

 private:
  double factor_;
  std::chrono::nanoseconds slack_;
};

PluginDefinition latency_comparator_definition() {
  PluginDefinition def;
  def.name = "latency";
  def.role = Role::comparator;
  def.description =
      "The replay's latency is at most factor x the original's + slack (difference path `latency`)";
  def.options = {
      option("factor", OptionType::number, "How many times the original latency the replay may take")
          .default_value(2.0),
      option("slack", OptionType::duration, "Added to the limit, so fast endpoints do not flap on jitter")
          .default_value("50ms"),
  };
  def.create_comparator = [](const Options& options) -> std::unique_ptr<Comparator> {
    double factor = options.number("factor");
    if (factor <= 0) options.fail("factor", "\"factor\" must be positive");
    auto slack = options.duration("slack");
    if (slack.count() < 0) options.fail("slack", "\"slack\" cannot be negative");
    return std::make_unique<LatencyComparator>(factor, slack);
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::latency_comparator_definition);
