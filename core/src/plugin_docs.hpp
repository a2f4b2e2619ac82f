#pragma once
// Describes plugins from their declarations: `doppel inspect`, `doppel plugins` and the
// generated reference in docs/ all come from here, never from a second hand-written list.
#include <string>
#include <vector>

#include "plugin_registry.hpp"

namespace doppel::core {

std::string plugin_table(const PluginRegistry& registry);              // `doppel plugins`
std::string describe_plugin(const LoadedPlugin& plugin);              // `doppel inspect NAME`
std::string plugin_reference_markdown(const PluginDefinition& def);   // one plugin's page section
// Every generated file: name -> content (docs/reference/*.md).
std::vector<std::pair<std::string, std::string>> reference_documents(const PluginRegistry& registry);

}  // namespace doppel::core
