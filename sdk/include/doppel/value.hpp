#pragma once
// Configuration values with the position they came from, so that every error can say
// FILE:LINE:COL. The runtime converts the TOML document into this tree; plugins and
// tests never see the TOML library.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace doppel {

struct SourcePosition {
  std::shared_ptr<const std::string> file;  // shared by every value of one document
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::string to_string() const;  // "FILE:LINE:COL", or "FILE" / "" when unknown
};

class Value {
 public:
  using Array = std::vector<Value>;
  using Table = std::vector<std::pair<std::string, Value>>;  // in document order

  Value() = default;
  Value(bool b) : data_(b) {}
  Value(int i) : data_(std::int64_t{i}) {}
  Value(std::int64_t i) : data_(i) {}
  Value(double d) : data_(d) {}
  Value(const char* s) : data_(std::string(s)) {}
  Value(std::string s) : data_(std::move(s)) {}
  Value(Array a) : data_(std::move(a)) {}
  Value(Table t) : data_(std::move(t)) {}
  // Builds a table from {"key", value} pairs: Value::table({{"port", 80}}).
  static Value table(std::initializer_list<std::pair<std::string, Value>> entries);
  static Value array(std::initializer_list<Value> items);

  bool is_null() const { return data_.index() == 0; }
  bool is_bool() const { return std::holds_alternative<bool>(data_); }
  bool is_integer() const { return std::holds_alternative<std::int64_t>(data_); }
  bool is_float() const { return std::holds_alternative<double>(data_); }
  bool is_number() const { return is_integer() || is_float(); }
  bool is_string() const { return std::holds_alternative<std::string>(data_); }
  bool is_array() const { return std::holds_alternative<Array>(data_); }
  bool is_table() const { return std::holds_alternative<Table>(data_); }

  bool as_bool() const { return std::get<bool>(data_); }
  std::int64_t as_integer() const { return std::get<std::int64_t>(data_); }
  double as_number() const { return is_integer() ? static_cast<double>(as_integer()) : std::get<double>(data_); }
  const std::string& as_string() const { return std::get<std::string>(data_); }
  const Array& as_array() const { return std::get<Array>(data_); }
  Array& as_array() { return std::get<Array>(data_); }
  const Table& as_table() const { return std::get<Table>(data_); }
  Table& as_table() { return std::get<Table>(data_); }

  // Table lookup; nullptr when absent or when this is not a table.
  const Value* find(std::string_view key) const;
  std::string_view type_name() const;  // "string", "integer", "table", ...
  std::string to_toml() const;         // inline TOML text, for docs and messages

  SourcePosition position;  // where the value (or its key) starts

 private:
  std::variant<std::monostate, bool, std::int64_t, double, std::string, Array, Table> data_;
};

}  // namespace doppel
