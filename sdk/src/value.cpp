#include "doppel/value.hpp"

#include <cstdio>

namespace doppel {

std::string SourcePosition::to_string() const {
  std::string out = file ? *file : std::string();
  if (line == 0) return out;
  return out + ":" + std::to_string(line) + ":" + std::to_string(column);
}

Value Value::table(std::initializer_list<std::pair<std::string, Value>> entries) {
  return Value(Table(entries.begin(), entries.end()));
}

Value Value::array(std::initializer_list<Value> items) { return Value(Array(items.begin(), items.end())); }

const Value* Value::find(std::string_view key) const {
  if (!is_table()) return nullptr;
  for (const auto& [k, v] : as_table())
    if (k == key) return &v;
  return nullptr;
}

std::string_view Value::type_name() const {
  switch (data_.index()) {
    case 0: return "nothing";
    case 1: return "boolean";
    case 2: return "integer";
    case 3: return "float";
    case 4: return "string";
    case 5: return "array";
    default: return "table";
  }
}

namespace {
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}
}  // namespace

std::string Value::to_toml() const {
  switch (data_.index()) {
    case 0: return "";
    case 1: return as_bool() ? "true" : "false";
    case 2: return std::to_string(as_integer());
    case 3: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", std::get<double>(data_));
      std::string s = buf;
      if (s.find_first_of(".eni") == std::string::npos) s += ".0";
      return s;
    }
    case 4: return quote(as_string());
    case 5: {
      std::string out = "[";
      for (const auto& v : as_array()) out += (out.size() > 1 ? ", " : "") + v.to_toml();
      return out + "]";
    }
    default: {
      std::string out = "{ ";
      bool first = true;
      for (const auto& [k, v] : as_table()) {
        out += (first ? "" : ", ") + k + " = " + v.to_toml();
        first = false;
      }
      return out + " }";
    }
  }
}

}  // namespace doppel
