#pragma once
// `doppel gor FLAGS...`: GoReplay's command line, translated into an equivalent pipeline.
#include <stdexcept>
#include <string>
#include <vector>

namespace doppel::core {

class GorUsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct GorTranslation {
  std::string pipeline_toml;  // what --print-pipeline prints; `doppel run` runs the same
  bool print_pipeline = false;
  bool dry_run = false;         // --input-file-dry-run
  std::string log_level;        // from --verbose; "" keeps the default
  std::vector<std::string> notes;  // where doppel deliberately differs, logged at start
};

// Throws GorUsageError naming the flag (and the closest supported one) when a flag is
// unknown, lacks its value or has a value GoReplay would refuse.
GorTranslation translate_gor_command_line(const std::vector<std::string>& args);

enum class Arity { flag, value, repeated };

struct GorFlag {
  const char* name;  // without the leading dashes
  Arity arity;
  const char* help;
};

// Every GoReplay flag doppel accepts (also listed by the man page and the shell completions).
const std::vector<GorFlag>& gor_flags();

// The supported flags with one line each, for `doppel gor --help`.
std::string gor_flags_help();

}  // namespace doppel::core
