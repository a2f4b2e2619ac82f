#include "cli_docs.hpp"

#include <sstream>

namespace doppel::core {
namespace {

// roff: a backslash is \e, a dash is \-, and a line starting with . or ' would be a request.
std::string roff(std::string_view text) {
  std::string out;
  bool line_start = true;
  for (char c : text) {
    if (line_start && (c == '.' || c == '\'')) out += "\\&";
    if (c == '\\') out += "\\e";
    else if (c == '-') out += "\\-";
    else out += c;
    line_start = c == '\n';
  }
  return out;
}

std::string upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

// A subcommand's own --help: the global one already stands for it.
bool not_help(const CLI::Option* o) { return o->get_lnames() != std::vector<std::string>{"help"}; }

bool is_flag(const CLI::Option* o) { return !o->get_positional() && o->get_expected_min() == 0; }

// "-h, --help" / "--output DIR"
std::string option_names(const CLI::Option* o) {
  std::string names;
  for (const auto& s : o->get_snames()) names += (names.empty() ? "-" : ", -") + s;
  for (const auto& l : o->get_lnames()) names += (names.empty() ? "--" : ", --") + l;
  return names;
}

std::vector<std::string> switches(const CLI::Option* o) {
  std::vector<std::string> out;
  for (const auto& s : o->get_snames()) out.push_back("-" + s);
  for (const auto& l : o->get_lnames()) out.push_back("--" + l);
  return out;
}

std::string value_name(const CLI::Option* o) {
  std::string type = o->get_type_name();
  if (type.starts_with("TEXT:")) type.erase(0, 5);  // CLI11's "TEXT:{a,b}" for a choice
  return type.empty() || type == "TEXT" ? "VALUE" : type;
}

void options_section(std::ostringstream& out, const std::vector<const CLI::Option*>& options) {
  for (const auto* o : options) {
    if (o->get_positional()) continue;
    out << ".TP\n.B " << roff(option_names(o));
    if (!is_flag(o)) out << " \\fI" << roff(value_name(o)) << "\\fR";
    out << "\n" << roff(o->get_description()) << "\n";
  }
}

std::vector<const CLI::App*> subcommands(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App*) { return true; });
}

std::string hint_for(const CompletionHints& hints, const std::string& name) {
  auto it = hints.find(name);
  return it == hints.end() ? std::string() : it->second;
}

// ' inside a single-quoted shell word.
std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

// A description inside zsh's _arguments "[...]": brackets and colons are syntax there.
std::string zsh_description(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";  // the whole spec is single-quoted
      continue;
    }
    if (c == '[' || c == ']' || c == ':' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// The bash words that complete a hint: compgen arguments.
std::string bash_compgen(const std::string& hint) {
  if (hint.starts_with("choices:")) return "-W " + shell_quote(hint.substr(8));
  if (hint == "directory") return "-d";
  if (hint == "plugins") return "-W \"$(\"${COMP_WORDS[0]}\" plugins --names 2>/dev/null)\"";
  if (hint.empty()) return "-W ''";  // a value with nothing to offer (a duration, a number)
  return "-f";
}

std::string zsh_action(const std::string& hint) {
  if (hint.starts_with("choices:")) return "(" + hint.substr(8) + ")";
  if (hint == "directory") return "_files -/";
  if (hint == "plugins") return "{compadd -- ${(f)\"$(doppel plugins --names 2>/dev/null)\"}}";
  if (hint.starts_with("file:")) return "_files -g \"" + hint.substr(5) + "\"";
  if (hint == "file") return "_files";
  return " ";  // a value with nothing to offer: zsh shows its name only
}

}  // namespace

std::vector<ManPage> man_pages(const CLI::App& app, const std::string& version, const std::vector<GorFlag>& gor) {
  std::vector<ManPage> pages;
  const std::string source = "doppel " + version;
  auto globals = app.get_options();

  std::ostringstream top;
  top << ".TH DOPPEL 1 \"\" \"" << source << "\" \"doppel manual\"\n"
      << ".SH NAME\ndoppel \\- " << roff(app.get_description().substr(app.get_description().find(':') + 2)) << "\n"
      << ".SH SYNOPSIS\n.B doppel\n[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]\n"
      << ".SH COMMANDS\n";
  for (const auto* sub : subcommands(app))
    top << ".TP\n.BR doppel\\-" << roff(sub->get_name()) << " (1)\n" << roff(sub->get_description()) << "\n";
  top << ".SH OPTIONS\n";
  options_section(top, globals);
  top << ".SH EXIT STATUS\n" << roff(app.get_footer()) << "\n"
      << ".SH FILES\n.TP\n.I /usr/lib/*/doppel/plugins\nThe plugins that come with doppel; more with "
         "\\fB\\-\\-plugin\\-dir\\fR or \\fBDOPPEL_PLUGIN_PATH\\fR.\n"
      << ".TP\n.I /usr/share/doppel/pipelines\nExample pipelines.\n"
      << ".TP\n.I /etc/doppel/NAME.toml\nThe pipeline the \\fBdoppel@NAME\\fR systemd service runs.\n"
      << ".SH ENVIRONMENT\n.TP\n.B DOPPEL_PLUGIN_PATH\nColon-separated directories of plugin libraries.\n"
      << ".SH SEE ALSO\n";
  std::string see_also;
  for (const auto* sub : subcommands(app)) see_also += (see_also.empty() ? "" : ",\n") + ("\\fBdoppel\\-" + roff(sub->get_name()) + "\\fR(1)");
  top << see_also << "\n";
  pages.push_back({"doppel.1", top.str()});

  for (const auto* sub : subcommands(app)) {
    const std::string name = sub->get_name();
    std::ostringstream page;
    page << ".TH DOPPEL-" << upper(name) << " 1 \"\" \"" << source << "\" \"doppel manual\"\n"
         << ".SH NAME\ndoppel\\-" << roff(name) << " \\- " << roff(sub->get_description()) << "\n"
         << ".SH SYNOPSIS\n.B doppel " << roff(name) << "\n";
    auto options = sub->get_options(not_help);
    if (name == "gor") {
      page << "[\\fIGOREPLAY-FLAGS\\fR]\n.SH DESCRIPTION\nRuns a GoReplay command line: the flags are GoReplay's, "
              "written as \\fBgor\\fR takes them (\\-flag or \\-\\-flag, =value or a separate value), translated into "
              "an equivalent pipeline (\\fB\\-\\-print\\-pipeline\\fR shows it). A flag doppel does not support is an "
              "error, never ignored.\n.SH GOREPLAY FLAGS\n";
      for (const auto& f : gor) {
        page << ".TP\n.B \\-\\-" << roff(f.name);
        if (f.arity != Arity::flag) page << " \\fIVALUE\\fR";
        page << "\n" << roff(f.help) << (f.arity == Arity::repeated ? " (repeatable)" : "") << "\n";
      }
    } else {
      bool any_option = false;
      for (const auto* o : options) any_option = any_option || !o->get_positional();
      if (any_option) page << "[\\fIOPTIONS\\fR]";
      for (const auto* o : options)
        if (o->get_positional()) page << " \\fI" << roff(o->get_name(true)) << "\\fR";
      page << "\n.SH DESCRIPTION\n" << roff(sub->get_description()) << ".\n";
      for (const auto* o : options)
        if (o->get_positional()) page << ".TP\n.I " << roff(o->get_name(true)) << "\n" << roff(o->get_description()) << "\n";
      if (any_option) {
        page << ".SH OPTIONS\n";
        options_section(page, options);
      }
    }
    page << ".SH GLOBAL OPTIONS\n";
    options_section(page, globals);
    page << ".SH EXIT STATUS\n" << roff(app.get_footer()) << "\n.SH SEE ALSO\n\\fBdoppel\\fR(1)\n";
    pages.push_back({"doppel-" + name + ".1", page.str()});
  }
  return pages;
}

std::string bash_completion(const CLI::App& app, const CompletionHints& hints, const std::vector<GorFlag>& gor) {
  std::ostringstream out;
  std::string names, global_switches, value_switches;
  for (const auto* sub : subcommands(app)) names += (names.empty() ? "" : " ") + sub->get_name();
  auto add_switches = [&](const CLI::Option* o, std::string& list) {
    for (const auto& s : switches(o)) {
      list += (list.empty() ? "" : " ") + s;
      if (!is_flag(o)) value_switches += " " + s;
    }
  };
  for (const auto* o : app.get_options()) add_switches(o, global_switches);

  out << "# bash completion for doppel, generated by `doppel completion bash` from its command line.\n"
      << "_doppel() {\n"
      << "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} sub= i\n"
      << "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      << "    case ${COMP_WORDS[i]} in " << [&] {
           std::string alternatives;
           for (const auto* sub : subcommands(app)) alternatives += (alternatives.empty() ? "" : "|") + sub->get_name();
           return alternatives;
         }() << ") sub=${COMP_WORDS[i]}; break ;; esac\n"
      << "  done\n"
      << "  case $prev in\n";
  // Values of options: by hint, else files.
  std::map<std::string, std::string> value_hints;
  auto note_value = [&](const CLI::Option* o) {
    if (is_flag(o) || o->get_positional()) return;
    for (const auto& s : switches(o)) value_hints[s] = hint_for(hints, s);
  };
  for (const auto* o : app.get_options()) note_value(o);
  for (const auto* sub : subcommands(app))
    for (const auto* o : sub->get_options()) note_value(o);
  for (const auto& f : gor)  // GoReplay's values are mostly files and addresses
    if (f.arity != Arity::flag) value_hints[std::string("--") + f.name] = "file";
  for (const auto& [name, hint] : value_hints)
    out << "    " << name << ") COMPREPLY=($(compgen " << bash_compgen(hint) << " -- \"$cur\")); return ;;\n";
  out << "  esac\n"
      << "  if [[ -z $sub ]]; then\n"
      << "    COMPREPLY=($(compgen -W " << shell_quote(names + " " + global_switches) << " -- \"$cur\"))\n"
      << "    return\n"
      << "  fi\n"
      << "  local switches= positional=\n"
      << "  case $sub in\n";
  for (const auto* sub : subcommands(app)) {
    std::string list = global_switches, positional;
    if (sub->get_name() == "gor") {
      for (const auto& f : gor) list += std::string(" --") + f.name;
    }
    for (const auto* o : sub->get_options(not_help)) {
      if (o->get_positional()) {
        if (positional.empty()) positional = hint_for(hints, o->get_name(true));
        if (positional.empty()) positional = "file";
      } else {
        for (const auto& s : switches(o)) list += " " + s;
      }
    }
    out << "    " << sub->get_name() << ") switches=" << shell_quote(list) << " positional=" << shell_quote(positional)
        << " ;;\n";
  }
  out << "  esac\n"
      << "  if [[ $cur == -* || -z $positional ]]; then\n"
      << "    COMPREPLY=($(compgen -W \"$switches\" -- \"$cur\"))\n"
      << "  else\n"
      << "    case $positional in\n";
  for (const auto& [name, hint] : hints)
    if (!name.starts_with("-"))
      out << "      " << shell_quote(hint) << ") COMPREPLY=($(compgen " << bash_compgen(hint) << " -- \"$cur\")) ;;\n";
  out << "      *) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n"
      << "    esac\n"
      << "  fi\n"
      << "}\n"
      << "complete -o filenames -F _doppel doppel\n";
  return out.str();
}

std::string zsh_completion(const CLI::App& app, const CompletionHints& hints, const std::vector<GorFlag>& gor) {
  std::ostringstream out;
  auto spec = [&](const CLI::Option* o) {
    std::string s;
    auto names = switches(o);
    if (names.size() > 1) {
      std::string group;
      for (const auto& n : names) group += (group.empty() ? "" : " ") + n;
      s += "(" + group + ")'{";
      for (std::size_t i = 0; i < names.size(); ++i) s += (i ? "," : "") + names[i];
      s += "}'";
    } else {
      s += names.front();
    }
    s += "[" + zsh_description(o->get_description()) + "]";
    std::string value = value_name(o);
    if (value.starts_with("{")) value = "value";  // a choice: the action lists them
    if (!is_flag(o)) s += ":" + zsh_description(value) + ":" + zsh_action(hint_for(hints, names.back()));
    return s;
  };
  std::vector<std::string> global_specs;
  for (const auto* o : app.get_options()) global_specs.push_back(spec(o));

  out << "#compdef doppel\n"
      << "# zsh completion for doppel, generated by `doppel completion zsh` from its command line.\n"
      << "_doppel() {\n"
      << "  local curcontext=$curcontext state line\n"
      << "  local -a commands\n"
      << "  commands=(\n";
  for (const auto* sub : subcommands(app))
    out << "    " << shell_quote(sub->get_name() + ":" + sub->get_description()) << "\n";
  out << "  )\n"
      << "  _arguments -C \\\n";
  for (const auto& s : global_specs) out << "    '" << s << "' \\\n";
  out << "    '1: :->command' \\\n"
      << "    '*:: :->arguments'\n"
      << "  case $state in\n"
      << "    command) _describe -t commands 'doppel command' commands ;;\n"
      << "    arguments)\n"
      << "      case $words[1] in\n";
  for (const auto* sub : subcommands(app)) {
    out << "        " << sub->get_name() << ")\n          _arguments \\\n";
    for (const auto& s : global_specs) out << "            '" << s << "' \\\n";
    if (sub->get_name() == "gor") {
      for (const auto& f : gor) {
        out << "            '" << (f.arity == Arity::repeated ? "*" : "") << "--" << f.name << "["
            << zsh_description(f.help) << "]" << (f.arity == Arity::flag ? "" : ":VALUE:_files") << "' \\\n";
      }
    }
    int position = 1;
    for (const auto* o : sub->get_options(not_help)) {
      if (o->get_positional()) {
        out << "            '" << position++ << ":" << zsh_description(o->get_description()) << ":"
            << zsh_action(hint_for(hints, o->get_name(true))) << "' \\\n";
      } else {
        out << "            '" << spec(o) << "' \\\n";
      }
    }
    out << "            && return\n          ;;\n";
  }
  out << "      esac\n"
      << "      ;;\n"
      << "  esac\n"
      << "}\n"
      << "_doppel \"$@\"\n";
  return out.str();
}

}  // namespace doppel::core
