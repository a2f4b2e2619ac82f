// libFuzzer: any text as a pipeline file. A hostile pipeline must end in errors that point into
// the file, never in a crash, a hang or an exception: the TOML reader (pipeline_file.cpp), the
// graph checks (pipeline_graph.cpp), option validation against real schemas, and the factories
// of the plugins it names all run, in both build modes (`run` and `test`).
//
// The registry holds the test-only stages (inputs and outputs without side effects) and the
// real filter, middleware and comparator plugins: their factories only read options. Real
// inputs and outputs are left out, since configuring one may open files or sockets.
#include <netdb.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline_graph.hpp"
#include "plugin_registry.hpp"

using namespace doppel;
using namespace doppel::core;

// `[pipeline] metrics = "host:port"` resolves the host when the file is read. A fuzzed file
// must not send DNS queries: here only "localhost" resolves (to 127.0.0.1), as it does
// without a network. These definitions take the place of libc's in this executable.
extern "C" int getaddrinfo(const char* node, const char*, const addrinfo*, addrinfo** result) {
  if (node == nullptr || std::strcmp(node, "localhost") != 0) return EAI_NONAME;
  auto* address = static_cast<sockaddr_in*>(std::calloc(1, sizeof(sockaddr_in)));
  auto* info = static_cast<addrinfo*>(std::calloc(1, sizeof(addrinfo)));
  address->sin_family = AF_INET;
  address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  info->ai_family = AF_INET;
  info->ai_socktype = SOCK_STREAM;
  info->ai_addrlen = sizeof(sockaddr_in);
  info->ai_addr = reinterpret_cast<sockaddr*>(address);
  *result = info;
  return 0;
}
extern "C" void freeaddrinfo(addrinfo* info) {
  if (info == nullptr) return;
  std::free(info->ai_addr);
  std::free(info);
}

namespace {

const PluginRegistry& registry() {
  static const PluginRegistry loaded = [] {
    PluginRegistry r;
    std::string_view libraries = FUZZ_PLUGIN_LIBRARIES;  // colon-separated, set by CMake
    while (!libraries.empty()) {
      auto colon = libraries.find(':');
      std::string path(libraries.substr(0, colon));
      if (!r.load_library(path)) {
        for (const auto& p : r.problems()) std::fprintf(stderr, "%s\n", p.c_str());
        std::abort();  // a broken build, not a finding
      }
      libraries.remove_prefix(colon == std::string_view::npos ? libraries.size() : colon + 1);
    }
    return r;
  }();
  return loaded;
}

std::size_t line_count(std::string_view text) {
  std::size_t lines = 1;
  for (char c : text) lines += c == '\n';
  return lines;
}

// Errors point into the file: the fuzzer's file name, and a line the text has.
void check_positions(const std::vector<ConfigError>& errors, std::size_t lines) {
  for (const auto& e : errors) {
    const SourcePosition& p = e.position();
    if (p.line > lines + 1 || std::string_view(e.what()).empty()) {
      std::fprintf(stderr, "error outside the file: %s: %s (the file has %zu lines)\n", p.to_string().c_str(), e.what(),
                   lines);
      __builtin_trap();
    }
  }
}

}  // namespace

// Loads the plugins before fuzzing starts, so that libFuzzer sees their coverage from the start.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)registry();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const PluginRegistry& plugins = registry();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::size_t lines = line_count(text);
  std::vector<ConfigError> errors;
  auto spec = load_pipeline_text(text, "fuzz.toml", errors);
  check_positions(errors, lines);
  if (!spec) {
    if (errors.empty()) __builtin_trap();  // nothing read, and nothing said why
    return 0;
  }
  for (BuildMode mode : {BuildMode::run, BuildMode::test}) {
    std::vector<ConfigError> graph_errors = errors;
    auto graph = build_graph(*spec, plugins, graph_errors, mode);
    check_positions(graph_errors, lines);
    if (!graph) {
      if (graph_errors.size() == errors.size()) __builtin_trap();  // refused without a reason
      continue;
    }
    std::vector<std::string> warnings;
    (void)describe_overflow(*graph, warnings);
  }
  return 0;
}
