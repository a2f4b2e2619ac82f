#pragma once
#include <re2/re2.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "doppel/json_path.hpp"
#include "doppel/protobuf_json.hpp"
#include "doppel/stage.hpp"

namespace doppel::plugins {

struct JsonFieldFilterConfig {
  json::JsonPath field;
  std::vector<std::string> in;                // keep when a value equals one of these
  std::vector<std::string> not_in;            // drop when a value equals one of these
  std::vector<std::unique_ptr<RE2>> matches;  // keep when a value matches one of these
  std::optional<bool> exists;                 // keep when the field is present (true) / absent (false)
  bool look_in_json = true;
  bool look_in_form = true;
  bool look_in_query = true;
  // gRPC requests are read through it (null: they cannot be read, see JsonFieldFilter).
  std::shared_ptr<const protobuf::DescriptorSet> descriptors;
};

// Keeps requests by the value of one field, looked up by exact path in the JSON body, the
// form-urlencoded body and the query string (bodies decoded from chunked/gzip first). Every
// configured condition must hold; with wildcards or repeated query keys a condition holds
// when any found value satisfies it (not_in: when none is listed).
//
// A gRPC request (content-type application/grpc*) is looked into as JSON (`sources` has
// "json") only through a descriptor set: its first message, decoded with the input type of
// the method its path names. Without the set, for a method the set lacks, or for bytes that do
// not decode, the body is unreadable like invalid JSON (its own drop reason, logged once);
// binary is never read as JSON or form text.
class JsonFieldFilter : public Stage {
 public:
  explicit JsonFieldFilter(JsonFieldFilterConfig config) : config_(std::move(config)) {}
  void process(const MessagePtr& message) override;

 private:
  // The first message of a gRPC request as JSON in `json`, or the reason it cannot be read.
  std::string_view read_grpc(const HttpView& http, std::string& json);
  // Logs the first occurrence of each reason a gRPC body could not be read, with its cause.
  void warn_once(std::string_view reason, const std::string& detail);

  JsonFieldFilterConfig config_;
  bool warned_no_descriptor_set_ = false, warned_unknown_method_ = false, warned_undecodable_ = false;
};

}  // namespace doppel::plugins
