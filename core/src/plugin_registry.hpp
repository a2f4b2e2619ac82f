#pragma once
// Finds plugin libraries, checks their descriptor, and keeps every definition by role and
// name. Libraries stay loaded until the process exits.
#include <filesystem>
#include <string>
#include <vector>

#include "doppel/plugin.hpp"

namespace doppel::core {

struct LoadedPlugin {
  const PluginDefinition* definition = nullptr;
  std::filesystem::path library;
};

class PluginRegistry {
 public:
  // Loads every plugin library (*.so) in `dir`. Libraries that are refused are reported in
  // problems() as one line each, naming the path; the others load.
  void load_directory(const std::filesystem::path& dir);
  // Loads one library; returns false (and records why) when it is refused.
  bool load_library(const std::filesystem::path& path);

  const LoadedPlugin* find(Role role, std::string_view name) const;
  std::vector<const LoadedPlugin*> find_all(std::string_view name) const;  // any role
  std::vector<std::string> names(Role role) const;
  const std::vector<LoadedPlugin>& plugins() const { return plugins_; }
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<LoadedPlugin> plugins_;
  std::vector<std::string> problems_;
  std::vector<std::filesystem::path> loaded_paths_;
};

// The built-in plugin directory next to the executable (build tree or installed layout).
std::vector<std::filesystem::path> builtin_plugin_dirs();
// DOPPEL_PLUGIN_PATH, colon-separated.
std::vector<std::filesystem::path> env_plugin_dirs();

}  // namespace doppel::core
