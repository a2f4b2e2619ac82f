#pragma once
// How a plugin library describes itself. A library ends with one line:
//
//   DOPPEL_PLUGIN(url_filter_definition)
//
// where url_filter_definition() returns a PluginDefinition. One library may export several.
// The runtime reads the C descriptor (ABI version, SDK version, build tag) before it touches
// any C++ type of the library, and refuses a library built for another ABI.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "doppel/comparator.hpp"
#include "doppel/kinds.hpp"
#include "doppel/options.hpp"
#include "doppel/stage.hpp"
#include "doppel/version.hpp"

namespace doppel {

enum class Role { input, filter, middleware, output, comparator };
std::string_view role_name(Role role);          // "input", ...
std::string_view role_section(Role role);       // "inputs", "filters", ... as in pipeline files

struct MetricSpec {
  std::string name;
  std::string description;
};

struct PluginDefinition {
  std::string name;
  Role role = Role::filter;
  std::string description;  // one line
  KindSet accepts;          // kinds it takes in (nothing for inputs and comparators)
  KindSet produces;         // kinds it creates (most it can; an instance may narrow it)
  bool passes_through = false;  // re-emits accepted messages (filters, middleware)
  // Filters that judge requests only: the runtime never shows them responses; a response
  // follows the fate of its request (dropped with it, passed with it).
  bool requests_only = false;
  std::vector<OptionSpec> options;
  std::vector<MetricSpec> metrics;  // names a stage counts beyond in/out/dropped/failed
  std::function<std::unique_ptr<Stage>(const Options&)> create_stage;
  std::function<std::unique_ptr<Comparator>(const Options&)> create_comparator;
};

}  // namespace doppel

// The C face of a plugin library; nothing in it depends on the C++ ABI.
extern "C" {
struct doppel_plugin_descriptor {
  std::uint32_t abi_version;
  const char* sdk_version;
  const char* build_tag;  // standard library and its ABI flavour; must match the runtime's
  // Valid only once abi_version and build_tag matched: returns the C++ definitions.
  const void* (*definitions)(std::uint32_t* count);
};
}

#if defined(_LIBCPP_VERSION)
#define DOPPEL_BUILD_TAG "libc++"
#elif defined(_GLIBCXX_USE_CXX11_ABI) && _GLIBCXX_USE_CXX11_ABI
#define DOPPEL_BUILD_TAG "libstdc++/cxx11"
#else
#define DOPPEL_BUILD_TAG "libstdc++/old"
#endif

#define DOPPEL_PLUGIN(...)                                                                   \
  namespace {                                                                                \
  const void* doppel_plugin_definitions(std::uint32_t* count) {                              \
    static const std::vector<::doppel::PluginDefinition> definitions = [] {                  \
      std::vector<::doppel::PluginDefinition> all;                                           \
      for (auto make : {__VA_ARGS__}) all.push_back(make());                                 \
      return all;                                                                            \
    }();                                                                                     \
    *count = static_cast<std::uint32_t>(definitions.size());                                 \
    return definitions.data();                                                               \
  }                                                                                          \
  }                                                                                          \
  extern "C" __attribute__((visibility("default"))) const doppel_plugin_descriptor           \
      doppel_plugin_descriptor_v = {DOPPEL_ABI_VERSION, DOPPEL_SDK_VERSION, DOPPEL_BUILD_TAG, \
                                    &doppel_plugin_definitions}

// The symbol the loader looks up.
#define DOPPEL_DESCRIPTOR_SYMBOL "doppel_plugin_descriptor_v"
