#pragma once
// Options declared once, as data. The same declaration drives validation, `doppel inspect`
// and the generated reference in docs/.
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "doppel/units.hpp"
#include "doppel/value.hpp"

namespace doppel {

enum class OptionType {
  string,
  boolean,
  integer,
  number,       // integer or float
  duration,     // "250ms"
  size,         // "64MiB" or an integer number of bytes
  rate,         // "100%" or "1000/s"
  string_list,  // ["a", "b"]; a single string is accepted as a one-element list
  any_list,     // a list of strings or numbers (e.g. `in = ["664", 665]`)
  table_list,   // [[stage.rule]] blocks, each checked against `fields`
};
std::string_view option_type_name(OptionType type);

struct OptionSpec {
  std::string name;
  OptionType type = OptionType::string;
  std::string description;
  std::optional<Value> default_value;  // absent: no default
  bool required = false;
  std::vector<std::string> choices;    // allowed values of a string option, when a closed set
  std::vector<OptionSpec> fields;      // table_list: the options of each table
};

// Helpers that read like the declaration they build:
//   option("url", OptionType::string, "Replay target").required()
class OptionBuilder {
 public:
  OptionBuilder(std::string name, OptionType type, std::string description);
  OptionBuilder& required();
  OptionBuilder& default_value(Value v);
  OptionBuilder& choices(std::vector<std::string> allowed);
  OptionBuilder& fields(std::vector<OptionSpec> table_fields);
  operator OptionSpec() const { return spec_; }

 private:
  OptionSpec spec_;
};
inline OptionBuilder option(std::string name, OptionType type, std::string description) {
  return OptionBuilder(std::move(name), type, std::move(description));
}

// How an error message shows text a user wrote (an option's value, a key, a stage name): in
// double quotes, control characters, quotes and backslashes escaped, and at most `max_bytes`
// of it, cut at a character boundary and followed by its length, so that a 10 MB value makes
// a one-line error:  "GET /\x01"   "aaaaaaaa…" (10485760 bytes)
inline constexpr std::size_t kQuotedBytes = 64;
std::string quote_for_message(std::string_view text, std::size_t max_bytes = kQuotedBytes);
// The same without the quotes, for text shown in brackets or after a colon: aaaaaaaa… (10485760 bytes)
std::string excerpt_for_message(std::string_view text, std::size_t max_bytes = kQuotedBytes);

// A configuration error at a position; the runtime prints it as FILE:LINE:COL: message.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(SourcePosition position, std::string key, const std::string& message)
      : std::runtime_error(message), position_(std::move(position)), key_(std::move(key)) {}
  const SourcePosition& position() const { return position_; }
  const std::string& key() const { return key_; }

 private:
  SourcePosition position_;
  std::string key_;
};

// Validated options of one stage. Accessors apply defaults; an accessor for an option that
// is neither set nor defaulted throws ConfigError (a schema bug, caught by tests).
class Options {
 public:
  // Checks `table` against `specs`: unknown keys (listing the allowed ones), types, required
  // options, choices, units. Every problem is appended to `errors`; keys in `reserved`
  // (plugin, from, ...) belong to the runtime and are skipped.
  static Options validate(const Value& table, const std::vector<OptionSpec>& specs,
                          std::vector<ConfigError>& errors,
                          const std::vector<std::string>& reserved = {});

  bool has(std::string_view name) const;  // set in the file (not just defaulted)
  std::string string(std::string_view name) const;
  bool boolean(std::string_view name) const;
  std::int64_t integer(std::string_view name) const;
  double number(std::string_view name) const;
  std::chrono::nanoseconds duration(std::string_view name) const;
  std::uint64_t size(std::string_view name) const;
  Rate rate(std::string_view name) const;
  std::vector<std::string> strings(std::string_view name) const;  // string_list / any_list as text
  std::vector<Options> tables(std::string_view name) const;       // table_list
  const Value* raw(std::string_view name) const;  // the value as written (or the default)

  // Where `name` was written (or the stage table's position when it was not).
  SourcePosition position(std::string_view name) const;
  // Throws a ConfigError at the position of `name`; for checks the schema cannot express.
  [[noreturn]] void fail(std::string_view name, const std::string& message) const;

  const SourcePosition& table_position() const { return table_position_; }

 private:
  const Value& require(std::string_view name) const;
  std::vector<std::pair<std::string, Value>> values_;  // set or defaulted
  std::vector<std::string> set_;                       // names set in the file
  std::vector<OptionSpec> specs_;
  SourcePosition table_position_;
};

// The closest candidates to `word` by edit distance, best first (for "did you mean").
std::vector<std::string> closest_names(std::string_view word, const std::vector<std::string>& candidates,
                                       std::size_t max_results = 3);

}  // namespace doppel
