#include "doppel/kinds.hpp"

#include "doppel/plugin.hpp"

namespace doppel {

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::request: return "request";
    case Kind::response: return "response";
    case Kind::replay: return "replay";
    case Kind::verdict: return "verdict";
  }
  return "unknown";
}

std::optional<Kind> parse_kind(std::string_view name) {
  for (Kind k : {Kind::request, Kind::response, Kind::replay, Kind::verdict}) {
    if (name == kind_name(k) || (name.size() == 1 && name[0] - '0' == static_cast<int>(k))) return k;
  }
  return std::nullopt;
}

std::string KindSet::to_string() const {
  std::string out = "{";
  for (Kind k : {Kind::request, Kind::response, Kind::replay, Kind::verdict}) {
    if (!contains(k)) continue;
    if (out.size() > 1) out += ", ";
    out += kind_name(k);
  }
  return out + "}";
}

std::string_view role_name(Role role) {
  switch (role) {
    case Role::input: return "input";
    case Role::filter: return "filter";
    case Role::middleware: return "middleware";
    case Role::output: return "output";
    case Role::comparator: return "comparator";
  }
  return "unknown";
}

std::string_view role_section(Role role) {
  switch (role) {
    case Role::input: return "inputs";
    case Role::filter: return "filters";
    case Role::middleware: return "middleware";
    case Role::output: return "outputs";
    case Role::comparator: return "comparators";
  }
  return "unknown";
}

}  // namespace doppel
