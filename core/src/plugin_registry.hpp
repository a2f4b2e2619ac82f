#pragma once
// Finds plugin libraries, checks their descriptor, and keeps every definition by role and
// name. Libraries stay loaded until the process exits.
#include <deque>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "doppel/plugin.hpp"

namespace doppel::core {

struct LoadedPlugin {
  const PluginDefinition* definition = nullptr;
  std::filesystem::path library;
  int precedence = 0;  // of the directory it came from: a later directory overrides an earlier one
};

class PluginRegistry {
 public:
  // Loads every plugin library (*.so) in `dir` now. Libraries that are refused are reported
  // in problems() as one line each, naming the path; the others load.
  void load_directory(const std::filesystem::path& dir);
  // Lists the libraries in `dir` and loads each only when it is needed: a lookup of a plugin
  // loads the library named for it (libdoppel-ROLE-NAME.so, '_' in NAME as '-'), and the
  // rest only when the lookup finds nothing or every plugin is listed. For the built-in
  // plugins, which follow that naming: a run loads the few libraries its pipeline uses.
  // A directory both indexed and loaded is indexed only.
  void index_directory(const std::filesystem::path& dir);
  // Loads one library; returns false (and records why) when it is refused.
  bool load_library(const std::filesystem::path& path);

  // Called with each problem as it is found (loading can happen at any lookup).
  void on_problem(std::function<void(const std::string&)> sink) { on_problem_ = std::move(sink); }

  const LoadedPlugin* find(Role role, std::string_view name) const;
  std::vector<const LoadedPlugin*> find_all(std::string_view name) const;  // any role
  std::vector<std::string> names(Role role) const;
  // Every plugin of every directory. Lookups hand out pointers into it that later loading
  // must not move: a deque.
  const std::deque<LoadedPlugin>& plugins() const;
  const std::vector<std::string>& problems() const { return problems_; }
  const std::vector<std::filesystem::path>& loaded_libraries() const { return loaded_paths_; }

 private:
  struct IndexedLibrary {
    std::filesystem::path path;
    int precedence;
  };
  // Loading on first use does not change what a lookup answers, only when the work is done:
  // the registry stays logically const for its users.
  bool load(const std::filesystem::path& path, int precedence) const;
  void load_indexed(const std::function<bool(const std::filesystem::path&)>& which) const;
  void load_all() const { load_indexed([](const std::filesystem::path&) { return true; }); }
  void problem(std::string text) const;
  std::vector<std::filesystem::path> library_files(const std::filesystem::path& dir);

  mutable std::deque<LoadedPlugin> plugins_;
  mutable std::vector<std::string> problems_;
  mutable std::vector<std::filesystem::path> loaded_paths_;
  mutable std::vector<IndexedLibrary> indexed_;  // not loaded yet
  std::vector<std::filesystem::path> indexed_dirs_;
  std::function<void(const std::string&)> on_problem_;
  int next_precedence_ = 0;
};

// The built-in plugin directory next to the executable (build tree or installed layout).
std::vector<std::filesystem::path> builtin_plugin_dirs();
// DOPPEL_PLUGIN_PATH, colon-separated.
std::vector<std::filesystem::path> env_plugin_dirs();

}  // namespace doppel::core
