#pragma once
// A small streaming JSON writer for what doppel itself emits (verdicts, reports). Commas
// and nesting are tracked for the caller; strings are always valid JSON, whatever bytes
// they came from: invalid UTF-8 becomes U+FFFD, control characters are escaped.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace doppel {

struct JsonWriterOptions {
  // Escape '<', '>' and '&' as \u003c..., so the text can sit inside an HTML <script>.
  bool html_safe = false;
};

class JsonWriter {
 public:
  explicit JsonWriter(JsonWriterOptions options = {}) : options_(options) {}

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  // The key of the next value inside an object.
  JsonWriter& key(std::string_view name);

  JsonWriter& value(std::string_view text);
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(const std::string& text) { return value(std::string_view(text)); }
  JsonWriter& value(bool b);
  JsonWriter& value(int i) { return value(static_cast<std::int64_t>(i)); }
  JsonWriter& value(unsigned i) { return value(static_cast<std::uint64_t>(i)); }
  JsonWriter& value(std::int64_t i);
  JsonWriter& value(std::uint64_t i);
  JsonWriter& value(double d);                  // NaN and infinities become null
  JsonWriter& null();
  // Already serialized JSON, inserted as one value (the caller vouches for it).
  JsonWriter& raw(std::string_view json);

  // key(name).value(v) in one call.
  template <class T>
  JsonWriter& field(std::string_view name, const T& v) {
    key(name);
    return value(v);
  }

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }
  // Every object and array opened was closed.
  bool complete() const { return stack_.empty() && !out_.empty(); }

 private:
  void before_value();
  JsonWriterOptions options_;
  std::string out_;
  std::vector<bool> stack_;  // per open container: a value was already written in it
  bool after_key_ = false;
};

// Appends `text` as a quoted JSON string to `out`.
void append_json_string(std::string& out, std::string_view text, bool html_safe = false);
// `text` as a quoted JSON string.
std::string json_quote(std::string_view text, bool html_safe = false);
// At most `max_bytes` of `text`, cut at a UTF-8 character boundary, with "…(+N bytes)"
// appended when something was cut, so a reader sees how much is missing.
std::string truncate_for_display(std::string_view text, std::size_t max_bytes);

}  // namespace doppel
