#pragma once
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "doppel/json_path.hpp"
#include "doppel/protobuf_json.hpp"
#include "doppel/stage.hpp"
#include "pseudonymizer.hpp"

namespace doppel::plugins {

struct RedactFilterConfig {
  std::vector<std::string> headers;  // header names, compared case-insensitively
  // JSON paths; those that match a one-key path (`password`, `**.password`) also apply to
  // form and multipart fields and query parameters, as do bracketed names read as paths.
  json::JsonPathSet fields;
  bool drop_unreadable = true;       // a body that should be redacted but cannot be read is dropped
  std::string key;                   // the HMAC key (bytes)
  bool random_key = false;           // `key` was drawn for this process (tokens differ between runs)
  std::string key_file_warning;      // logged at start: a key file other users may read
  // gRPC messages are redacted through it (null: a gRPC body is unreadable, see RedactFilter).
  std::shared_ptr<const protobuf::DescriptorSet> descriptors;
  // gRPC request paths remembered by id for their responses: at most this many, each this long.
  std::size_t max_grpc_requests = 65536;
  std::chrono::nanoseconds grpc_request_ttl = std::chrono::seconds(60);
};

// Replaces header values and fields of requests and responses by redaction tokens (see
// Pseudonymizer), leaving every other byte as it was. When a chunked or gzip/deflate body
// had to be rewritten, it is sent decoded: Transfer-Encoding and Content-Encoding go,
// Content-Length says the new size.
//
// A gRPC body (content-type application/grpc*) is protobuf: with a descriptor set each message
// is decoded (a request's with its method's input type; a response's with the output type of
// the method its request, seen earlier by this filter under the same id, named), redacted as
// JSON and re-encoded; a changed message is framed again uncompressed (flag 0, which gRPC reads
// as uncompressed whatever grpc-encoding says, so that header stays), unchanged messages and
// chunked trailers (grpc-status) stay byte for byte. A gRPC body that cannot be read or
// re-encoded is unreadable (on_unreadable), with its own reason, logged once per reason.
class RedactFilter : public Stage {
 public:
  explicit RedactFilter(RedactFilterConfig config) : config_(std::move(config)), tokens_(config_.key) {}
  void start(StageContext& context) override;
  void process(const MessagePtr& message) override;

 private:
  struct GrpcRedaction {
    std::optional<std::string> data;  // the new DATA bytes (framed messages); nullopt: nothing changed
    std::string_view unreadable;      // why it could not be redacted ("" when it could)
  };
  GrpcRedaction redact_grpc(const Message& message, const HttpView& http, std::size_t& count);
  // The message type of a gRPC body: a request's method's input type, a response's output type.
  std::optional<std::string> grpc_type(const Message& message, const HttpView& http, std::string_view& unreadable);
  void remember_method(const Message& message, const HttpView& http);
  // Forgets the request paths older than grpc_request_ttl.
  void expire_methods(std::chrono::steady_clock::time_point now);
  void warn_once(std::string_view reason, const std::string& detail);

  RedactFilterConfig config_;
  Pseudonymizer tokens_;
  Counter* redacted_values_ = nullptr;
  Counter* unredacted_bodies_ = nullptr;
  Counter* grpc_requests_evicted_ = nullptr;
  Gauge* grpc_requests_gauge_ = nullptr;
  // Request paths of recent gRPC requests by message id, for their responses (an original and
  // its replays: kept until they expire, not taken by the first). Oldest first out, by the
  // bound or the time; the deque points at the map's own keys (nodes do not move).
  std::unordered_map<std::string, std::string> grpc_paths_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, const std::string*>> grpc_path_order_;
  std::vector<std::string> warned_;  // reasons already logged
};

}  // namespace doppel::plugins
