// Plugin `json_field`: options, their parsing into JsonFieldFilterConfig, and registration.
#include "doppel/plugin.hpp"
#include "doppel/regex_options.hpp"
#include "json_field_filter.hpp"

namespace doppel::plugins {
namespace {

JsonFieldFilterConfig make_config(const Options& options) {
  JsonFieldFilterConfig config;
  try {
    config.field = json::JsonPath::parse(options.string("field"));
  } catch (const json::JsonPathError& e) {
    options.fail("field", "invalid path \"" + options.string("field") + "\": " + e.what());
  }
  config.in = options.strings("in");
  config.not_in = options.strings("not_in");
  config.matches = compile_patterns(options, "matches");
  if (options.has("exists")) config.exists = options.boolean("exists");
  if (config.in.empty() && config.not_in.empty() && config.matches.empty() && !config.exists) config.exists = true;
  if (config.exists == false && (!config.in.empty() || !config.matches.empty()))
    options.fail("exists", "exists = false contradicts \"in\" / \"matches\", which need the field");
  if (config.field.is_root()) options.fail("field", "the field must name a value inside the document, not \"$\"");

  config.look_in_json = config.look_in_form = config.look_in_query = false;
  for (const auto& source : options.strings("sources")) {
    if (source == "json") config.look_in_json = true;
    else if (source == "form") config.look_in_form = true;
    else if (source == "query") config.look_in_query = true;
    else options.fail("sources", "unknown source \"" + source + "\" (expected \"json\", \"form\" or \"query\")");
  }
  if (!config.look_in_json && !config.look_in_form && !config.look_in_query)
    options.fail("sources", "at least one source is needed");
  config.descriptors = protobuf::descriptor_set_option(options);
  return config;
}

PluginDefinition json_field_filter_definition() {
  PluginDefinition def;
  def.name = "json_field";
  def.role = Role::filter;
  def.description =
      "Keeps requests by the value of a field (exact path) in the JSON body, form body or query string, or in "
      "a gRPC request's first message (with descriptor_set)";
  def.accepts = KindSet::http();
  def.passes_through = true;
  def.requests_only = true;
  def.options = {
      option("field", OptionType::string,
             "Exact field path: robot_id, a.b, items[0].id, items[*].id, $.a, a[\"x.y\"]; * = any key, [*] = any "
             "index; never a substring match. Form and query lookups use single-key paths only")
          .required(),
      option("in", OptionType::any_list,
             "Keep requests whose field equals one of these; \"664\" and 664 both match a JSON 664 or \"664\"")
          .default_value(Value::array({})),
      option("not_in", OptionType::any_list, "Drop requests whose field equals one of these")
          .default_value(Value::array({})),
      option("matches", OptionType::string_list, "RE2 patterns; keep requests whose field (as text) matches one")
          .default_value(Value::array({})),
      option("exists", OptionType::boolean,
             "true: keep requests that have the field; false: keep those that do not. Implied true when no "
             "other condition is set"),
      option("sources", OptionType::string_list, "Where to look: \"json\" body, \"form\" body, \"query\" string")
          .default_value(Value::array({"json", "form", "query"})),
      option("descriptor_set", OptionType::string,
             "FileDescriptorSet of the gRPC service (protoc --descriptor_set_out=api.pb --include_imports "
             "api.proto); relative to the directory doppel runs in. With it, a gRPC request (content-type "
             "application/grpc*) is read as the proto3 JSON of its first message, decoded with its method's "
             "request type: field names as in the .proto, every scalar field present (at its default value when "
             "not sent), enums by name, 64-bit integers as strings. Without it gRPC bodies cannot be read"),
  };
  def.metrics = {
      {"dropped.field_missing", "requests without the field (in, matches, exists = true)"},
      {"dropped.field_present", "requests with the field when exists = false"},
      {"dropped.value_not_in_list", "requests whose field matched no value of `in`"},
      {"dropped.value_in_not_in_list", "requests whose field matched a value of `not_in`"},
      {"dropped.value_not_matching", "requests whose field matched no `matches` pattern"},
      {"dropped.invalid_json", "requests whose body should be JSON but does not parse (or nests too deep)"},
      {"dropped.undecodable_body", "requests whose chunked/gzip/deflate body could not be decoded"},
      {"dropped.grpc_no_descriptor_set", "gRPC requests that could not be read because descriptor_set is not set"},
      {"dropped.grpc_unknown_method", "gRPC requests whose method (the path) is not in the descriptor set"},
      {"dropped.grpc_undecodable",
       "gRPC requests whose first message could not be split from the body (truncated length prefix, bad "
       "compression) or does not decode as the method's request type"},
      {"dropped.unparseable_request", "messages that are not a parseable HTTP request"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    return std::make_unique<JsonFieldFilter>(make_config(options));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::json_field_filter_definition);
