// Plugin `nonempty` (a comparator): listed fields must exist and be non-empty in the replay.
#include "doppel/json_path.hpp"
#include "doppel/json_text.hpp"
#include "doppel/plugin.hpp"

namespace doppel::plugins {
namespace {

bool is_empty(simdjson::dom::element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::NULL_VALUE: return true;
    case simdjson::dom::element_type::STRING: return std::string_view(e).empty();
    case simdjson::dom::element_type::ARRAY: return simdjson::dom::array(e).begin() == simdjson::dom::array(e).end();
    case simdjson::dom::element_type::OBJECT: return simdjson::dom::object(e).begin() == simdjson::dom::object(e).end();
    default: return false;  // numbers (0 included) and booleans are values
  }
}

struct NonemptyConfig {
  std::vector<json::JsonPath> fields;
  std::size_t max_value_bytes = 200;
};

// Fails a field that is missing in the replay ("missing"), or null, "", [] or {} ("empty").
// With a wildcard, at least one value must match and every matched value must be non-empty.
// The original side of each difference shows what the original response had there.
class NonemptyComparator : public Comparator {
 public:
  explicit NonemptyComparator(NonemptyConfig config) : config_(std::move(config)) {}

  std::vector<Difference> compare(const Exchange& exchange) const override {
    if (!exchange.replay || !exchange.replay->meta.error.empty()) return {};
    const DecodedBody& body = exchange.replay->body();
    auto doc = json::JsonDocument::parse(body.bytes);
    if (!body.error.empty() || !doc.ok()) {
      std::string why = body.error.empty() ? doc.error() : "undecodable body: " + body.error;
      return {Difference{"$", "invalid_json", "", "(invalid JSON: " + why + ") " +
                                                       json::truncate_for_display(body.bytes, config_.max_value_bytes)}};
    }
    std::optional<json::JsonDocument> original;
    auto original_at = [&](const json::JsonPath& path) -> std::string {
      if (!exchange.original) return "";
      if (!original) original.emplace(json::JsonDocument::parse(exchange.original->body().bytes));
      if (!original->ok()) return "";
      auto found = path.find_first(original->root());
      return found ? json::display(*found, config_.max_value_bytes) : "(absent)";
    };
    std::vector<Difference> out;
    for (const auto& field : config_.fields) {
      auto matches = field.find_with_paths(doc.root());
      if (matches.empty()) {
        out.push_back(Difference{field.text(), "missing", original_at(field), ""});
        continue;
      }
      for (const auto& m : matches) {
        if (!is_empty(m.value)) continue;
        std::string path = json::format_path(m.path);
        std::string original_value;
        if (exchange.original) {
          auto concrete = json::JsonPath::parse(path);
          original_value = original_at(concrete);
        }
        out.push_back(Difference{path, "empty", original_value, json::display(m.value, config_.max_value_bytes)});
      }
    }
    return out;
  }

 private:
  NonemptyConfig config_;
};

PluginDefinition nonempty_comparator_definition() {
  PluginDefinition def;
  def.name = "nonempty";
  def.role = Role::comparator;
  def.description = "Listed JSON fields must exist in the replay and be non-empty (not null, \"\", [] or {})";
  def.options = {
      option("fields", OptionType::string_list,
             "Exact paths (results.hint_list, items[*].name); with wildcards every match must be non-empty")
          .required(),
  };
  def.create_comparator = [](const Options& options) -> std::unique_ptr<Comparator> {
    NonemptyConfig config;
    try {
      config.fields = json::JsonPathSet::parse(options.strings("fields")).paths();
    } catch (const json::JsonPathError& e) {
      options.fail("fields", e.what());
    }
    if (config.fields.empty()) options.fail("fields", "list at least one field");
    return std::make_unique<NonemptyComparator>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::nonempty_comparator_definition);
