// Comparator `headers`: response headers are equal, either the listed ones or all but an
// ignore list. Names compare case-insensitively; repeated headers compare as their list of
// values in order.
#include <algorithm>
#include <string>

#include "doppel/plugin.hpp"

namespace doppel::plugins {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool contains(const std::vector<std::string>& names, std::string_view name) {
  return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return iequals(n, name); });
}

std::string values_of(const HttpView& http, std::string_view name, bool& present) {
  std::string out;
  present = false;
  for (const auto& h : http.headers()) {
    if (!iequals(h.name, name)) continue;
    if (present) out += ", ";
    out += h.value;
    present = true;
  }
  return out;
}

class HeadersComparator : public Comparator {
 public:
  HeadersComparator(std::vector<std::string> listed, std::vector<std::string> ignore)
      : listed_(std::move(listed)), ignore_(std::move(ignore)) {}

  std::vector<Difference> compare(const Exchange& e) const override {
    if (!e.original || !e.replay) return {};
    const HttpView& original = e.original->http();
    const HttpView& replay = e.replay->http();
    std::vector<std::string> names = listed_;
    if (names.empty()) {
      // Every header either side has, in order of first appearance, minus the ignore list.
      for (const HttpView* side : {&original, &replay})
        for (const auto& h : side->headers())
          if (!contains(names, h.name) && !contains(ignore_, h.name)) names.emplace_back(h.name);
    }
    std::vector<Difference> out;
    for (const auto& name : names) {
      bool in_original = false, in_replay = false;
      std::string a = values_of(original, name, in_original);
      std::string b = values_of(replay, name, in_replay);
      std::string path = "header:" + lower(name);
      if (in_original && !in_replay) out.push_back({path, "missing", a, ""});
      else if (!in_original && in_replay) out.push_back({path, "extra", "", b});
      else if (a != b) out.push_back({path, "changed", a, b});
    }
    return out;
  }

 private:
  std::vector<std::string> listed_;
  std::vector<std::string> ignore_;
};

PluginDefinition headers_comparator_definition() {
  PluginDefinition def;
  def.name = "headers";
  def.role = Role::comparator;
  def.description = "Response headers are equal: the listed ones, or all but an ignore list "
                    "(difference paths `header:NAME`)";
  def.options = {
      option("headers", OptionType::string_list,
             "Headers to compare (case-insensitive); empty compares every header not in `ignore`")
          .default_value(Value::array({})),
      option("ignore", OptionType::string_list,
             "Headers left out when comparing all of them; the default leaves out what differs between two "
             "healthy servers (Date, Server) and message framing")
          .default_value(Value::array({"Date", "Server", "Connection", "Keep-Alive", "Transfer-Encoding",
                                       "Content-Length"})),
  };
  def.create_comparator = [](const Options& options) -> std::unique_ptr<Comparator> {
    auto listed = options.strings("headers");
    if (!listed.empty() && options.has("ignore"))
      options.fail("ignore", "\"ignore\" applies when comparing all headers; remove it or empty \"headers\"");
    return std::make_unique<HeadersComparator>(std::move(listed), options.strings("ignore"));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::headers_comparator_definition);
