#include "plugin_docs.hpp"

#include <algorithm>
#include <sstream>

#include "pipeline_file.hpp"

namespace doppel::core {
namespace {

std::string default_text(const OptionSpec& o) {
  if (o.required) return "required";
  if (!o.default_value) return "not set";
  return o.default_value->to_toml();
}

std::string kinds_text(const KindSet& k) { return k.empty() ? "nothing" : k.to_string(); }

void options_text(std::ostringstream& out, const std::vector<OptionSpec>& options, const std::string& indent) {
  std::size_t width = 0;
  for (const auto& o : options) width = std::max(width, o.name.size());
  for (const auto& o : options) {
    out << indent << o.name << std::string(width - o.name.size() + 2, ' ') << option_type_name(o.type) << ", "
        << default_text(o) << "\n"
        << indent << "    " << o.description << "\n";
    if (!o.choices.empty()) {
      out << indent << "    one of:";
      for (const auto& c : o.choices) out << " \"" << c << "\"";
      out << "\n";
    }
    if (!o.fields.empty()) {
      out << indent << "    each table takes:\n";
      options_text(out, o.fields, indent + "      ");
    }
  }
}

std::string md_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += " ";
    else out += c;
  }
  return out;
}

void options_markdown(std::ostringstream& out, const std::vector<OptionSpec>& options, const std::string& prefix) {
  for (const auto& o : options) {
    out << "| `" << prefix << o.name << "` | " << option_type_name(o.type) << " | "
        << (o.required ? "**required**" : (o.default_value ? "`" + md_escape(o.default_value->to_toml()) + "`" : "—"))
        << " | " << md_escape(o.description);
    if (!o.choices.empty()) {
      out << " One of:";
      for (const auto& c : o.choices) out << " `" << c << "`";
      out << ".";
    }
    out << " |\n";
    if (!o.fields.empty()) options_markdown(out, o.fields, prefix + o.name + "[].");
  }
}

}  // namespace

std::string plugin_table(const PluginRegistry& registry) {
  std::vector<const LoadedPlugin*> all;
  for (const auto& p : registry.plugins()) all.push_back(&p);
  std::sort(all.begin(), all.end(), [](auto* a, auto* b) {
    if (a->definition->role != b->definition->role) return a->definition->role < b->definition->role;
    return a->definition->name < b->definition->name;
  });
  std::ostringstream out;
  char line[512];
  std::snprintf(line, sizeof line, "%-14s %-11s %-34s %-28s %s\n", "NAME", "ROLE", "ACCEPTS", "PRODUCES", "DESCRIPTION");
  out << line;
  for (auto* p : all) {
    const auto& d = *p->definition;
    std::snprintf(line, sizeof line, "%-14s %-11s %-34s %-28s %s\n", d.name.c_str(), std::string(role_name(d.role)).c_str(),
                  kinds_text(d.accepts).c_str(), kinds_text(d.produces).c_str(), d.description.c_str());
    out << line;
  }
  return out.str();
}

std::string describe_plugin(const LoadedPlugin& plugin) {
  const auto& d = *plugin.definition;
  std::ostringstream out;
  out << d.name << " (" << role_name(d.role) << ")\n  " << d.description << "\n\n";
  out << "  declare as:  [" << role_section(d.role) << ".NAME]  plugin = \"" << d.name << "\"\n";
  out << "  library:     " << plugin.library.string() << "\n";
  if (d.role != Role::comparator) {
    out << "  accepts:     " << kinds_text(d.accepts) << "\n";
    out << "  produces:    " << kinds_text(d.produces) << (d.passes_through ? " (and passes on what it accepts)" : "")
        << "\n";
    if (d.requests_only) out << "  judges requests only; responses follow their request's fate\n";
  }
  out << "\nOPTIONS\n";
  if (d.options.empty()) out << "  (none)\n";
  options_text(out, d.options, "  ");
  out << "\nMETRICS (besides in, out, dropped.REASON, failed.REASON)\n";
  if (d.metrics.empty()) out << "  (none)\n";
  for (const auto& m : d.metrics) out << "  " << m.name << "\n      " << m.description << "\n";
  return out.str();
}

std::string plugin_reference_markdown(const PluginDefinition& d) {
  std::ostringstream out;
  out << "## `" << d.name << "`\n\n" << d.description << "\n\n";
  out << "Declare as `[" << role_section(d.role) << ".NAME]` with `plugin = \"" << d.name << "\"`.";
  if (d.role != Role::comparator) {
    out << " Accepts " << kinds_text(d.accepts) << "; produces " << kinds_text(d.produces);
    if (d.passes_through) out << " and passes on what it accepts";
    out << ".";
    if (d.requests_only) out << " Judges requests only: responses follow their request's fate.";
  }
  out << "\n\n";
  if (d.options.empty()) {
    out << "No options.\n\n";
  } else {
    out << "| option | type | default | description |\n|---|---|---|---|\n";
    options_markdown(out, d.options, "");
    out << "\n";
  }
  if (!d.metrics.empty()) {
    out << "| metric | meaning |\n|---|---|\n";
    for (const auto& m : d.metrics) out << "| `" << m.name << "` | " << md_escape(m.description) << " |\n";
    out << "\n";
  }
  return out.str();
}

std::vector<std::pair<std::string, std::string>> reference_documents(const PluginRegistry& registry) {
  std::vector<std::pair<std::string, std::string>> docs;
  const std::string banner =
      "<!-- Generated by `doppel docs` (cmake --build build --target docs-reference) from the plugins' option "
      "schemas. Do not edit by hand. -->\n\n";
  for (Role role : {Role::input, Role::filter, Role::middleware, Role::output, Role::comparator}) {
    std::ostringstream out;
    std::string section(role_section(role));
    out << banner << "# " << static_cast<char>(std::toupper(section[0])) << section.substr(1) << "\n\n";
    std::vector<const PluginDefinition*> defs;
    for (const auto& p : registry.plugins())
      if (p.definition->role == role) defs.push_back(p.definition);
    std::sort(defs.begin(), defs.end(), [](auto* a, auto* b) { return a->name < b->name; });
    for (auto* d : defs) out << plugin_reference_markdown(*d);
    docs.emplace_back(section + ".md", out.str());
  }
  std::ostringstream pipeline;
  pipeline << banner << "# The [pipeline] table\n\n| option | type | default | description |\n|---|---|---|---|\n";
  options_markdown(pipeline, pipeline_settings_schema(), "");
  pipeline << "\nEvery stage table also takes `plugin` (required), `from` (required except for inputs: the stages "
              "it reads), `queue_capacity` and `queue_bytes` (override the pipeline's for this stage).\n";
  docs.emplace_back("pipeline.md", pipeline.str());
  return docs;
}

}  // namespace doppel::core
