#pragma once
// Protobuf messages as JSON, for plugins that look into gRPC messages (the `grpc` comparator,
// body filters). Part of libdoppel-sdk-protobuf (CMake target doppel::sdk_protobuf), apart from
// libdoppel-sdk so that plugins that never see protobuf do not link libprotobuf. No protobuf
// type crosses this header: plugins need libprotobuf's headers neither to build nor to use it.
//
// Two ways to read a message:
//   - with a descriptor set (`protoc --descriptor_set_out=api.pb --include_imports api.proto`):
//     DescriptorSet::to_json, proto3 JSON as libprotobuf prints it (enums by name, 64-bit
//     integers as strings, bytes as base64), with two of its options: field names as the .proto
//     writes them (`trace_id`, not the lowerCamelCase `traceId`), so that paths users write are
//     the names in their .proto files; and fields at their default value printed too, so that a
//     value changed to 0 or "" reads as changed, not as missing;
//   - without one: raw_to_json, a field-number tree like `protoc --decode_raw`.
// libprotobuf logs each message it cannot parse to stderr; once a descriptor set is loaded its
// log goes to spdlog's debug level instead (process-wide: SetLogHandler), as callers report
// bad messages themselves.
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace doppel {
class Options;
}

namespace doppel::protobuf {

class DescriptorSetError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A compiled FileDescriptorSet: message types and the gRPC methods of its services. Immutable
// once loaded; every const member may be called from any number of threads at once.
class DescriptorSet {
 public:
  // Reads a FileDescriptorSet file. Throws DescriptorSetError with the reason (unreadable, not
  // a FileDescriptorSet, a file whose imports are missing: use --include_imports).
  static std::shared_ptr<const DescriptorSet> load_file(const std::string& path);
  // The same from the serialized bytes; `origin` names them in errors.
  static std::shared_ptr<const DescriptorSet> parse(std::string_view bytes, std::string_view origin);

  ~DescriptorSet();
  DescriptorSet(const DescriptorSet&) = delete;
  DescriptorSet& operator=(const DescriptorSet&) = delete;

  // One RPC: its request and response message types (full names, "pkg.Request").
  struct Method {
    std::string path;  // "/pkg.Service/Method", as in the request line
    std::string input_type;
    std::string output_type;
    bool client_streaming = false;
    bool server_streaming = false;
  };
  // The method a request path names ("/pkg.Service/Method"; a query is not part of it), or
  // nullopt when no service of the set has it.
  std::optional<Method> method(std::string_view path) const;
  std::vector<Method> methods() const;  // every method of every service, by path
  bool has_message_type(std::string_view full_name) const;

  // `bytes` (one message, wire format) of the message type `type` as proto3 JSON text. False
  // with `error` when `type` is unknown, when the bytes do not parse as that type, when a
  // required (proto2) field is missing, or when they carry fields the type does not declare
  // (a message of another type, or a descriptor set older than the service): the JSON would
  // silently leave those out.
  bool to_json(std::string_view type, std::string_view bytes, std::string& json, std::string& error) const;

  // The reverse of to_json, for plugins that edit a message as JSON and send it on (redact):
  // `json` (proto3 JSON of `type`; field names as the .proto writes them or lowerCamelCase)
  // in wire format. False with `error` when `type` is unknown or `json` does not fit it: a
  // field the type does not declare, a value of the wrong type (a string where a number is).
  bool from_json(std::string_view type, std::string_view json, std::string& bytes, std::string& error) const;

 private:
  struct Impl;
  explicit DescriptorSet(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// `bytes` (wire format, no schema) as a JSON field-number tree: an object whose keys are field
// numbers ("1", "2", ...) in the order they first occur; a number that occurs more than once
// holds an array of its values in order. Varints are unsigned integers; fixed32 and fixed64
// are strings "0x%08x" / "0x%016x" as `protoc --decode_raw` prints them (their type, integer or
// float, is unknown); groups are objects. A length-delimited value is a string when it is
// printable UTF-8 text (no control characters but tab, CR, LF), else a nested object when it
// parses as a message, else a string when it is UTF-8, else base64 of its bytes ("" is a
// string). Text goes first because short strings often parse as messages ("hi" would read as
// field 13 = 105), while an encoded message nearly always holds a byte below 0x20 (its tags
// for fields 1-3, its lengths). Below `max_depth` levels a length-delimited value is no more
// tried as a message. False with `error` when `bytes` is not wire format.
bool raw_to_json(std::string_view bytes, std::string& json, std::string& error, std::size_t max_depth = 64);

// The option `descriptor_set` of a plugin that reads gRPC messages, loaded: null when the option
// is not set; a file that cannot be used fails at the option (Options::fail, with the reason).
std::shared_ptr<const DescriptorSet> descriptor_set_option(const doppel::Options& options);

}  // namespace doppel::protobuf
