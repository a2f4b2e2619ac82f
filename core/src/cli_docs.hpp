#pragma once
// Man pages and shell completions generated from the command line's own definitions (CLI11),
// so that what `doppel --help` says, what `man doppel-run` says and what Tab offers cannot
// drift apart. `doppel man` and `doppel completion` print them; the build installs them.
#include <CLI/CLI.hpp>

#include <map>
#include <string>
#include <vector>

#include "gor_command.hpp"

namespace doppel::core {

// How Tab completes an option's value or a positional argument, by option name ("--log-level",
// or a positional's name such as "FILE"): "choices:a b c", "directory", "file:*.toml",
// "plugins" (the names `doppel plugins --names` prints). Options not listed complete files.
using CompletionHints = std::map<std::string, std::string>;

struct ManPage {
  std::string file_name;  // "doppel-run.1"
  std::string text;       // roff
};

// doppel.1 and one page per subcommand (doppel-gor.1 lists the GoReplay flags).
std::vector<ManPage> man_pages(const CLI::App& app, const std::string& version, const std::vector<GorFlag>& gor);

std::string bash_completion(const CLI::App& app, const CompletionHints& hints, const std::vector<GorFlag>& gor);
std::string zsh_completion(const CLI::App& app, const CompletionHints& hints, const std::vector<GorFlag>& gor);

}  // namespace doppel::core
