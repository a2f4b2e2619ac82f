// Plugin `grpc` (a comparator): options, their parsing into GrpcComparatorConfig, and registration.
#include "doppel/plugin.hpp"
#include "grpc_comparator.hpp"

namespace doppel::plugins {
namespace {

GrpcComparatorConfig make_config(const Options& options) {
  GrpcComparatorConfig config;
  config.diff = json::json_diff_config(options);
  config.compare_message = options.boolean("compare_message");
  config.descriptors = protobuf::descriptor_set_option(options);
  return config;
}

PluginDefinition grpc_comparator_definition() {
  PluginDefinition def;
  def.name = "grpc";
  def.role = Role::comparator;
  def.description =
      "gRPC responses: grpc-status, grpc-message, and each message of the stream in order, decoded to JSON "
      "(with a descriptor set: proto3 JSON; without: field-number trees) and diffed like the json comparator";
  def.options = {
      option("descriptor_set", OptionType::string,
             "FileDescriptorSet of the service (protoc --descriptor_set_out=api.pb --include_imports api.proto); "
             "relative to the directory doppel runs in. Without it messages are compared as field-number trees "
             "like protoc --decode_raw"),
      option("ignore", OptionType::string_list,
             "Paths inside one message whose subtrees are not compared, applied to every message of the stream: "
             "user.last_login, items[*].ts (names as in the .proto; without a descriptor set: field numbers, 1.3)")
          .default_value(Value::array({})),
      option("unordered", OptionType::string_list,
             "Paths inside one message of repeated fields compared as multisets (order ignored): results")
          .default_value(Value::array({})),
      option("tolerance", OptionType::number,
             "Numbers within this absolute distance are equal (0: exact); proto3 JSON prints 64-bit integers as "
             "strings, which are compared exactly")
          .default_value(0.0),
      option("max_differences", OptionType::integer,
             "Differences reported per exchange; beyond it one \"truncated\" entry says there were more")
          .default_value(100),
      option("max_value_length", OptionType::integer, "Bytes of each original/replay value shown in a difference")
          .default_value(200),
      option("compare_message", OptionType::boolean,
             "Compare grpc-message (the status text) as well as grpc-status")
          .default_value(true),
  };
  def.create_comparator = [](const Options& options) -> std::unique_ptr<Comparator> {
    return std::make_unique<GrpcComparator>(make_config(options));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::grpc_comparator_definition);
