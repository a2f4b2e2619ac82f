// Prints size and alignment of every type the SDK's headers define, one "NAME SIZE ALIGN" line
// each: the half of the ABI fingerprint a compiler knows (abi_fingerprint.py adds the virtual
// functions). A plugin built against other layouts would misread what the runtime hands it.
#include <cstdio>

#include "doppel/child_process.hpp"
#include "doppel/form.hpp"
#include "doppel/gor.hpp"
#include "doppel/gor_stream.hpp"
#include "doppel/grpc.hpp"
#include "doppel/held_leases.hpp"
#include "doppel/http_server.hpp"
#include "doppel/http2.hpp"
#include "doppel/io_threads.hpp"
#include "doppel/json_diff.hpp"
#include "doppel/json_path.hpp"
#include "doppel/json_writer.hpp"
#include "doppel/listen_address.hpp"
#include "doppel/message_pool.hpp"
#include "doppel/nats_connection.hpp"
#include "doppel/output_file.hpp"
#include "doppel/plugin.hpp"
#include "doppel/protobuf_json.hpp"
#include "doppel/session_key.hpp"
#include "doppel/units.hpp"

#define LAYOUT(T) std::printf("%s %zu %zu\n", #T, sizeof(T), alignof(T))

int main() {
  using namespace doppel;
  LAYOUT(ChildProcess);
  LAYOUT(LineSplitter);
  LAYOUT(Counter);
  LAYOUT(Gauge);
  LAYOUT(Exchange);
  LAYOUT(Difference);
  LAYOUT(Judgement);
  LAYOUT(ComparatorContext);
  LAYOUT(Comparator);
  LAYOUT(MultipartPart);
  LAYOUT(MultipartBody);
  LAYOUT(gor::Header);
  LAYOUT(gor::FileProbe);
  LAYOUT(gor::RecordReader);
  LAYOUT(gor::RecordWriter);
  LAYOUT(gor::PeriodicFlush);
  LAYOUT(grpc::Messages);
  LAYOUT(grpc::Status);
  LAYOUT(grpc::Response);
  LAYOUT(HeldLeases);
  LAYOUT(HttpServer);
  LAYOUT(HttpServer::Limits);
  LAYOUT(HttpServer::Counts);
  LAYOUT(HttpServer::Request);
  LAYOUT(HttpServer::Response);
  LAYOUT(HttpServer::Route);
  LAYOUT(HttpServer::Config);
  LAYOUT(HttpHeader);
  LAYOUT(HttpView);
  LAYOUT(DecodedBody);
  LAYOUT(FramedBody);
  LAYOUT(h2::Field);
  LAYOUT(h2::StreamMessage);
  LAYOUT(IoThreads);
  LAYOUT(json::PathStep);
  LAYOUT(json::JsonPathError);
  LAYOUT(json::JsonPath);
  LAYOUT(json::JsonPathSet);
  LAYOUT(json::JsonDocument);
  LAYOUT(json::JsonDiffConfig);
  LAYOUT(JsonWriterOptions);
  LAYOUT(JsonWriter);
  LAYOUT(KindSet);
  LAYOUT(ListenAddress);
  LAYOUT(detail::RunOnce);
  LAYOUT(Endpoint);
  LAYOUT(TlsMeta);
  LAYOUT(MessageMeta);
  LAYOUT(Message);
  LAYOUT(MessagePool);
  LAYOUT(nats::NatsConnectionConfig);
  LAYOUT(nats::NatsOptionsDeleter);
  LAYOUT(OptionSpec);
  LAYOUT(OptionBuilder);
  LAYOUT(ConfigError);
  LAYOUT(Options);
  LAYOUT(OutputFilePolicy);
  LAYOUT(OutputFile);
  LAYOUT(MetricSpec);
  LAYOUT(PluginDefinition);
  LAYOUT(doppel_plugin_descriptor);
  LAYOUT(protobuf::DescriptorSetError);
  LAYOUT(protobuf::DescriptorSet);
  LAYOUT(protobuf::DescriptorSet::Method);
  LAYOUT(SessionKeySpec);
  LAYOUT(StageContext);
  LAYOUT(Reference);
  LAYOUT(Stage);
  LAYOUT(Rate);
  LAYOUT(SourcePosition);
  LAYOUT(Value);
  return 0;
}
