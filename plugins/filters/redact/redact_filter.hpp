#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "doppel/json_path.hpp"
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
};

// Replaces header values and fields of requests and responses by redaction tokens (see
// Pseudonymizer), leaving every other byte as it was. When a chunked or gzip/deflate body
// had to be rewritten, it is sent decoded: Transfer-Encoding and Content-Encoding go,
// Content-Length says the new size.
class RedactFilter : public Stage {
 public:
  explicit RedactFilter(RedactFilterConfig config) : config_(std::move(config)), tokens_(config_.key) {}
  void start(StageContext& context) override;
  void process(const MessagePtr& message) override;

 private:
  RedactFilterConfig config_;
  Pseudonymizer tokens_;
  Counter* redacted_values_ = nullptr;
  Counter* unredacted_bodies_ = nullptr;
};

}  // namespace doppel::plugins
