#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "doppel/json_path.hpp"
#include "doppel/stage.hpp"

namespace doppel::plugins {

struct RedactFilterConfig {
  std::vector<std::string> headers;  // header names, compared case-insensitively
  json::JsonPathSet fields;          // JSON paths; single-key ones also apply to form bodies and query strings
  bool drop_unreadable = true;       // a body that should be redacted but cannot be read is dropped
};

// "REDACTED-" + the first 12 hex digits of the value's SHA-256: equal values stay equal, so
// comparisons and joins on redacted data still work.
std::string redaction_token(std::string_view value);

// Replaces header values and fields of requests and responses by redaction tokens, leaving
// every other byte as it was. When a chunked or gzip/deflate body had to be rewritten, it is
// sent decoded: Transfer-Encoding and Content-Encoding go, Content-Length says the new size.
class RedactFilter : public Stage {
 public:
  explicit RedactFilter(RedactFilterConfig config) : config_(std::move(config)) {}
  void process(const MessagePtr& message) override;

 private:
  RedactFilterConfig config_;
};

}  // namespace doppel::plugins
