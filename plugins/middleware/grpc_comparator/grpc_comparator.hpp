#pragma once
#include <memory>

#include "doppel/comparator.hpp"
#include "doppel/json_diff.hpp"
#include "doppel/protobuf_json.hpp"

namespace doppel::plugins {

struct GrpcComparatorConfig {
  json::JsonDiffConfig diff;  // paths relative to one message, applied to every message
  // Message types from `descriptor_set`; null: messages read as field-number trees.
  std::shared_ptr<const protobuf::DescriptorSet> descriptors;
  bool compare_message = true;  // grpc-message compared as well as grpc-status
};

// Compares the gRPC responses (original and replay): grpc-status, grpc-message, then each
// message of the stream in order, decoded to JSON and diffed with the SDK's JSON diff. Paths:
// `grpc-status`, `grpc-message`, `messages` (count, framing), `[i]` (a message that does not
// decode), `[i].<path in the message>` (as in a JSON array of the stream's messages). A missing
// side or a failed replay
// yields no differences (the compare stage reports those); a method missing from the
// descriptor set is an error of the judgement, never a pass.
class GrpcComparator : public Comparator {
 public:
  explicit GrpcComparator(GrpcComparatorConfig config) : config_(std::move(config)) {}
  std::vector<Difference> compare(const Exchange& exchange) const override;

 private:
  GrpcComparatorConfig config_;
};

}  // namespace doppel::plugins
