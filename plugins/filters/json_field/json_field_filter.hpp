#pragma once
#include <re2/re2.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "doppel/json_path.hpp"
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
};

// Keeps requests by the value of one field, looked up by exact path in the JSON body, the
// form-urlencoded body and the query string (bodies decoded from chunked/gzip first). Every
// configured condition must hold; with wildcards or repeated query keys a condition holds
// when any found value satisfies it (not_in: when none is listed).
class JsonFieldFilter : public Stage {
 public:
  explicit JsonFieldFilter(JsonFieldFilterConfig config) : config_(std::move(config)) {}
  void process(const MessagePtr& message) override;

 private:
  JsonFieldFilterConfig config_;
};

}  // namespace doppel::plugins
