#include "doppel/options.hpp"

#include <algorithm>
#include <cstdio>

namespace doppel {
namespace {

// Bytes of the UTF-8 sequence at the front of `s`; 0 when it is not a whole, valid one.
std::size_t utf8_sequence_length(std::string_view s) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  std::size_t n = 0;
  if (byte(0) < 0x80) n = 1;
  else if (byte(0) >= 0xC2 && byte(0) <= 0xDF) n = 2;
  else if (byte(0) >= 0xE0 && byte(0) <= 0xEF) n = 3;
  else if (byte(0) >= 0xF0 && byte(0) <= 0xF4) n = 4;
  if (n == 0 || n > s.size()) return 0;
  for (std::size_t i = 1; i < n; ++i)
    if ((byte(i) & 0xC0) != 0x80) return 0;
  return n;
}

// The one place that decides how user text appears in messages (quote_for_message).
std::string shown_in_message(std::string_view text, std::size_t max_bytes, bool quotes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes) + 32);
  if (quotes) out += '"';
  std::size_t budget = max_bytes, i = 0;
  char hex[8];
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    std::string_view piece;
    std::size_t used = 1;
    switch (c) {
      case '"': piece = quotes ? "\\\"" : "\""; break;
      case '\\': piece = "\\\\"; break;
      case '\n': piece = "\\n"; break;
      case '\r': piece = "\\r"; break;
      case '\t': piece = "\\t"; break;
      default:
        used = c < 0x20 || c == 0x7f ? 0 : utf8_sequence_length(text.substr(i));
        if (used == 0) {  // a control character, or a byte that is not UTF-8
          std::snprintf(hex, sizeof hex, "\\x%02x", c);
          piece = hex;
          used = 1;
        } else {
          piece = text.substr(i, used);
        }
    }
    if (piece.size() > budget) break;
    out += piece;
    budget -= piece.size();
    i += used;
  }
  if (i < text.size()) out += "\u2026";  // …
  if (quotes) out += '"';
  if (i < text.size()) out += " (" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace

std::string quote_for_message(std::string_view text, std::size_t max_bytes) {
  return shown_in_message(text, max_bytes, true);
}

std::string excerpt_for_message(std::string_view text, std::size_t max_bytes) {
  return shown_in_message(text, max_bytes, false);
}

std::string_view option_type_name(OptionType type) {
  switch (type) {
    case OptionType::string: return "string";
    case OptionType::boolean: return "boolean";
    case OptionType::integer: return "integer";
    case OptionType::number: return "number";
    case OptionType::duration: return "duration";
    case OptionType::size: return "size";
    case OptionType::rate: return "rate";
    case OptionType::string_list: return "list of strings";
    case OptionType::any_list: return "list of values";
    case OptionType::table_list: return "list of tables";
  }
  return "unknown";
}

OptionBuilder::OptionBuilder(std::string name, OptionType type, std::string description) {
  spec_.name = std::move(name);
  spec_.type = type;
  spec_.description = std::move(description);
}
OptionBuilder& OptionBuilder::required() {
  spec_.required = true;
  return *this;
}
OptionBuilder& OptionBuilder::default_value(Value v) {
  spec_.default_value = std::move(v);
  return *this;
}
OptionBuilder& OptionBuilder::choices(std::vector<std::string> allowed) {
  spec_.choices = std::move(allowed);
  return *this;
}
OptionBuilder& OptionBuilder::fields(std::vector<OptionSpec> table_fields) {
  spec_.fields = std::move(table_fields);
  return *this;
}

std::vector<std::string> closest_names(std::string_view word, const std::vector<std::string>& candidates,
                                       std::size_t max_results) {
  auto distance = [](std::string_view a, std::string_view b) {
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
      cur[0] = i;
      for (std::size_t j = 1; j <= b.size(); ++j)
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      std::swap(prev, cur);
    }
    return prev[b.size()];
  };
  std::vector<std::pair<std::size_t, std::string>> scored;
  std::size_t limit = std::max<std::size_t>(2, word.size() / 2);
  for (const auto& c : candidates) {
    // The distance is at least the difference in length: a very long word is ruled out
    // without filling a table of its length.
    std::size_t gap = word.size() > c.size() ? word.size() - c.size() : c.size() - word.size();
    std::size_t d = gap > limit ? gap : distance(word, c);
    bool prefix = c.starts_with(word) || word.starts_with(c);
    if (d <= limit || (prefix && !word.empty())) scored.emplace_back(prefix ? std::min(d, limit) : d, c);
  }
  std::stable_sort(scored.begin(), scored.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (auto& [d, c] : scored) {
    if (out.size() == max_results) break;
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  }
  return out;
}

namespace {

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string quoted_join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "\"" : ", \"") + n + "\"";
  return out;
}

// A value as an error message shows it: a string through quote_for_message, a list or table
// as TOML when that is short, else by its size.
std::string shown_value(const Value& v) {
  if (v.is_string()) return quote_for_message(v.as_string());
  if (v.is_array() || v.is_table()) {
    std::string toml = v.to_toml();
    if (toml.size() <= kQuotedBytes) return toml;
    std::size_t n = v.is_array() ? v.as_array().size() : v.as_table().size();
    return (v.is_array() ? "[…] (" : "{…} (") + std::to_string(n) + (v.is_array() ? " value" : " key") +
           (n == 1 ? ")" : "s)");
  }
  return v.to_toml();
}

// Checks one value against its spec; returns "" when fine, else what is wrong.
std::string check_type(const OptionSpec& spec, const Value& v, std::vector<ConfigError>& errors) {
  auto expected = [&](std::string_view what) {
    return "option \"" + spec.name + "\" must be " + std::string(what) + ", not " + std::string(v.type_name()) +
           (v.is_null() ? "" : " " + shown_value(v));
  };
  switch (spec.type) {
    case OptionType::string:
      if (!v.is_string()) return expected("a string");
      if (!spec.choices.empty() &&
          std::find(spec.choices.begin(), spec.choices.end(), v.as_string()) == spec.choices.end())
        return "option \"" + spec.name + "\" must be one of " + quoted_join(spec.choices) + ", not " +
               quote_for_message(v.as_string());
      return "";
    case OptionType::boolean: return v.is_bool() ? "" : expected("true or false");
    case OptionType::integer: return v.is_integer() ? "" : expected("an integer");
    case OptionType::number: return v.is_number() ? "" : expected("a number");
    case OptionType::duration:
      if (!v.is_string()) return expected("a duration string such as \"5s\"");
      try {
        parse_duration(v.as_string());
      } catch (const std::invalid_argument& e) {
        return "option \"" + spec.name + "\": " + e.what();
      }
      return "";
    case OptionType::size:
      if (v.is_integer()) return v.as_integer() >= 0 ? "" : expected("a size");
      if (!v.is_string()) return expected("a size such as \"64MiB\"");
      try {
        parse_size(v.as_string());
      } catch (const std::invalid_argument& e) {
        return "option \"" + spec.name + "\": " + e.what();
      }
      return "";
    case OptionType::rate:
      if (!v.is_string()) return expected("a rate such as \"100%\" or \"1000/s\"");
      try {
        parse_rate(v.as_string());
      } catch (const std::invalid_argument& e) {
        return "option \"" + spec.name + "\": " + e.what();
      }
      return "";
    case OptionType::string_list:
      if (v.is_string()) return "";
      if (!v.is_array()) return expected("a list of strings");
      for (const auto& item : v.as_array())
        if (!item.is_string()) return "option \"" + spec.name + "\" must list strings only, not " +
                                      std::string(item.type_name()) + " " + shown_value(item);
      return "";
    case OptionType::any_list:
      if (v.is_string() || v.is_number() || v.is_bool()) return "";
      if (!v.is_array()) return expected("a list");
      for (const auto& item : v.as_array())
        if (item.is_array() || item.is_table()) return "option \"" + spec.name + "\" must list plain values, not " +
                                                       std::string(item.type_name()) + "s";
      return "";
    case OptionType::table_list:
      if (!v.is_array()) return expected("a list of tables ([[...]] blocks)");
      for (const auto& item : v.as_array()) {
        if (!item.is_table()) return "option \"" + spec.name + "\" must hold tables, not " + std::string(item.type_name());
        Options::validate(item, spec.fields, errors);
      }
      return "";
  }
  return "";
}

std::string scalar_text(const Value& v) {
  if (v.is_string()) return v.as_string();
  if (v.is_integer()) return std::to_string(v.as_integer());
  if (v.is_bool()) return v.as_bool() ? "true" : "false";
  if (v.is_float()) return v.to_toml();
  return v.to_toml();
}

}  // namespace

Options Options::validate(const Value& table, const std::vector<OptionSpec>& specs, std::vector<ConfigError>& errors,
                          const std::vector<std::string>& reserved) {
  Options opts;
  opts.specs_ = specs;
  opts.table_position_ = table.position;
  if (!table.is_table()) {
    errors.emplace_back(table.position, "", "expected a table of options, not " + std::string(table.type_name()));
    return opts;
  }
  std::vector<std::string> allowed;
  for (const auto& s : specs) allowed.push_back(s.name);
  for (const auto& [key, value] : table.as_table()) {
    if (std::find(reserved.begin(), reserved.end(), key) != reserved.end()) continue;
    auto spec = std::find_if(specs.begin(), specs.end(), [&](const OptionSpec& s) { return s.name == key; });
    if (spec == specs.end()) {
      std::string msg = "unknown option " + quote_for_message(key);
      auto close = closest_names(key, allowed);
      if (!close.empty()) msg += "; did you mean " + quoted_join(close) + "?";
      msg += allowed.empty() ? " (this plugin takes no options)" : " (allowed: " + join(allowed) + ")";
      errors.emplace_back(value.position, key, msg);
      continue;
    }
    std::string problem = check_type(*spec, value, errors);
    if (!problem.empty()) {
      errors.emplace_back(value.position, key, problem);
      continue;
    }
    opts.values_.emplace_back(key, value);
    opts.set_.push_back(key);
  }
  for (const auto& spec : specs) {
    if (opts.has(spec.name)) continue;
    if (spec.required) {
      errors.emplace_back(table.position, spec.name, "missing required option \"" + spec.name + "\" (" +
                                                         std::string(option_type_name(spec.type)) + ": " +
                                                         spec.description + ")");
    } else if (spec.default_value) {
      Value v = *spec.default_value;
      v.position = table.position;
      opts.values_.emplace_back(spec.name, std::move(v));
    }
  }
  return opts;
}

bool Options::has(std::string_view name) const {
  return std::find(set_.begin(), set_.end(), name) != set_.end();
}

const Value* Options::raw(std::string_view name) const {
  for (const auto& [k, v] : values_)
    if (k == name) return &v;
  return nullptr;
}

const Value& Options::require(std::string_view name) const {
  if (const Value* v = raw(name)) return *v;
  throw ConfigError(table_position_, std::string(name),
                    "option \"" + std::string(name) + "\" is not set and has no default");
}

SourcePosition Options::position(std::string_view name) const {
  const Value* v = raw(name);
  return v && has(name) ? v->position : table_position_;
}

void Options::fail(std::string_view name, const std::string& message) const {
  throw ConfigError(position(name), std::string(name), message);
}

std::string Options::string(std::string_view name) const { return require(name).as_string(); }
bool Options::boolean(std::string_view name) const { return require(name).as_bool(); }
std::int64_t Options::integer(std::string_view name) const { return require(name).as_integer(); }
double Options::number(std::string_view name) const { return require(name).as_number(); }

std::chrono::nanoseconds Options::duration(std::string_view name) const {
  try {
    return parse_duration(require(name).as_string());
  } catch (const std::invalid_argument& e) {
    fail(name, e.what());
  }
}

std::uint64_t Options::size(std::string_view name) const {
  const Value& v = require(name);
  if (v.is_integer()) return static_cast<std::uint64_t>(v.as_integer());
  try {
    return parse_size(v.as_string());
  } catch (const std::invalid_argument& e) {
    fail(name, e.what());
  }
}

Rate Options::rate(std::string_view name) const {
  try {
    return parse_rate(require(name).as_string());
  } catch (const std::invalid_argument& e) {
    fail(name, e.what());
  }
}

std::vector<std::string> Options::strings(std::string_view name) const {
  const Value& v = require(name);
  std::vector<std::string> out;
  if (!v.is_array()) {
    out.push_back(scalar_text(v));
    return out;
  }
  for (const auto& item : v.as_array()) out.push_back(scalar_text(item));
  return out;
}

std::vector<Options> Options::tables(std::string_view name) const {
  const Value& v = require(name);
  auto spec = std::find_if(specs_.begin(), specs_.end(), [&](const OptionSpec& s) { return s.name == name; });
  std::vector<Options> out;
  if (spec == specs_.end() || !v.is_array()) return out;
  for (const auto& item : v.as_array()) {
    std::vector<ConfigError> ignored;  // reported when the stage was validated
    out.push_back(validate(item, spec->fields, ignored));
  }
  return out;
}

}  // namespace doppel
