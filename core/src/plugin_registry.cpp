#include "plugin_registry.hpp"

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <dlfcn.h>
#include <memory>
#include <unistd.h>

namespace doppel::core {
namespace fs = std::filesystem;

namespace {
// Loaded libraries are never unloaded: definitions and stage vtables point into them.
std::vector<std::unique_ptr<boost::dll::shared_library>>& libraries() {
  static auto* keep = new std::vector<std::unique_ptr<boost::dll::shared_library>>();
  return *keep;
}

bool looks_like_library(const fs::path& p) {
  std::string name = p.filename().string();
  return name.ends_with(".so") || name.find(".so.") != std::string::npos;
}
}  // namespace

std::vector<fs::path> PluginRegistry::library_files(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    problem(dir.string() + ": plugin directory does not exist");
    return {};
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.is_regular_file(ec) && looks_like_library(entry.path())) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

void PluginRegistry::load_directory(const fs::path& dir) {
  std::error_code ec;
  if (std::find(indexed_dirs_.begin(), indexed_dirs_.end(), fs::weakly_canonical(dir, ec)) != indexed_dirs_.end())
    return;
  int precedence = next_precedence_++;
  for (const auto& f : library_files(dir)) load(f, precedence);
}

void PluginRegistry::index_directory(const fs::path& dir) {
  int precedence = next_precedence_++;
  for (const auto& f : library_files(dir)) indexed_.push_back({f, precedence});
  std::error_code ec;
  indexed_dirs_.push_back(fs::weakly_canonical(dir, ec));
}

bool PluginRegistry::load_library(const fs::path& path) { return load(path, next_precedence_++); }

void PluginRegistry::problem(std::string text) const {
  if (on_problem_) on_problem_(text);
  problems_.push_back(std::move(text));
}

void PluginRegistry::load_indexed(const std::function<bool(const fs::path&)>& which) const {
  // In the order they were listed: a later directory overrides an earlier one.
  std::vector<IndexedLibrary> chosen;
  std::erase_if(indexed_, [&](const IndexedLibrary& lib) {
    if (!which(lib.path)) return false;
    chosen.push_back(lib);
    return true;
  });
  for (const auto& lib : chosen) load(lib.path, lib.precedence);
}

bool PluginRegistry::load(const fs::path& path, int precedence) const {
  std::error_code ec;
  fs::path canonical = fs::weakly_canonical(path, ec);
  if (std::find(loaded_paths_.begin(), loaded_paths_.end(), canonical) != loaded_paths_.end()) return true;
  // dlopen first: its message says why a file is not a library (Boost.DLL only has errno).
  void* probe = dlopen(canonical.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!probe) {
    const char* why = dlerror();
    problem(path.string() + ": not a loadable library (" + (why ? why : "unknown error") + "); not loaded");
    return false;
  }
  auto lib = std::make_unique<boost::dll::shared_library>();
  boost::dll::fs::error_code load_error;
  lib->load(canonical, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, load_error);
  dlclose(probe);  // Boost.DLL holds its own reference now
  if (load_error) {
    problem(path.string() + ": not a loadable library (" + load_error.message() + "); not loaded");
    return false;
  }
  if (!lib->has(DOPPEL_DESCRIPTOR_SYMBOL)) {
    problem(path.string() + ": not a doppel plugin (no " DOPPEL_DESCRIPTOR_SYMBOL " descriptor); not loaded");
    return false;
  }
  const auto& descriptor = lib->get<const doppel_plugin_descriptor>(DOPPEL_DESCRIPTOR_SYMBOL);
  if (descriptor.abi_version != kAbiVersion) {
    problem(path.string() + ": plugin ABI mismatch: expected " + std::to_string(kAbiVersion) + " (SDK " +
            kSdkVersion + "), got " + std::to_string(descriptor.abi_version) + " (SDK " +
            (descriptor.sdk_version ? descriptor.sdk_version : "?") + "); not loaded");
    return false;
  }
  if (descriptor.build_tag == nullptr || std::string_view(descriptor.build_tag) != DOPPEL_BUILD_TAG) {
    problem(path.string() + ": plugin built against another C++ library: expected " DOPPEL_BUILD_TAG ", got " +
            std::string(descriptor.build_tag ? descriptor.build_tag : "?") + "; not loaded");
    return false;
  }
  std::uint32_t count = 0;
  auto* defs = static_cast<const PluginDefinition*>(descriptor.definitions(&count));
  for (std::uint32_t i = 0; i < count; ++i) {
    const PluginDefinition& def = defs[i];
    auto same = std::find_if(plugins_.begin(), plugins_.end(), [&](const LoadedPlugin& p) {
      return p.definition->role == def.role && p.definition->name == def.name;
    });
    if (same == plugins_.end()) plugins_.push_back(LoadedPlugin{&def, canonical, precedence});
    else if (precedence >= same->precedence) *same = LoadedPlugin{&def, canonical, precedence};
  }
  loaded_paths_.push_back(canonical);
  libraries().push_back(std::move(lib));
  return true;
}

const LoadedPlugin* PluginRegistry::find(Role role, std::string_view name) const {
  auto search = [&]() -> const LoadedPlugin* {
    for (const auto& p : plugins_)
      if (p.definition->role == role && p.definition->name == name) return &p;
    return nullptr;
  };
  if (!indexed_.empty()) {
    std::string file = "libdoppel-" + std::string(role_name(role)) + "-" + std::string(name) + ".so";
    std::replace(file.begin(), file.end(), '_', '-');
    load_indexed([&](const fs::path& path) { return path.filename() == file; });
    if (const LoadedPlugin* p = search()) return p;
    load_all();  // a library named otherwise may still hold it
  }
  return search();
}

std::vector<const LoadedPlugin*> PluginRegistry::find_all(std::string_view name) const {
  load_all();
  std::vector<const LoadedPlugin*> out;
  for (const auto& p : plugins_)
    if (p.definition->name == name) out.push_back(&p);
  return out;
}

std::vector<std::string> PluginRegistry::names(Role role) const {
  load_all();
  std::vector<std::string> out;
  for (const auto& p : plugins_)
    if (p.definition->role == role) out.push_back(p.definition->name);
  std::sort(out.begin(), out.end());
  return out;
}

const std::deque<LoadedPlugin>& PluginRegistry::plugins() const {
  load_all();
  return plugins_;
}

std::vector<fs::path> builtin_plugin_dirs() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> out;
  if (ec) return out;
  fs::path bin = exe.parent_path();
  // The build tree (bin/ beside plugins/), then an installed tree wherever it was moved: the
  // libdir it was configured with (Debian's lib/x86_64-linux-gnu), lib, lib64.
  for (fs::path candidate : {bin.parent_path() / "plugins", bin.parent_path() / DOPPEL_INSTALL_LIBDIR / "doppel" / "plugins",
                             bin.parent_path() / "lib" / "doppel" / "plugins",
                             bin.parent_path() / "lib64" / "doppel" / "plugins"})
    if (fs::is_directory(candidate, ec) && std::find(out.begin(), out.end(), candidate) == out.end())
      out.push_back(candidate);
  return out;
}

std::vector<fs::path> env_plugin_dirs() {
  std::vector<fs::path> out;
  const char* env = std::getenv("DOPPEL_PLUGIN_PATH");
  if (!env) return out;
  std::string_view s(env);
  while (!s.empty()) {
    auto colon = s.find(':');
    std::string_view part = s.substr(0, colon);
    if (!part.empty()) out.emplace_back(std::string(part));
    if (colon == std::string_view::npos) break;
    s.remove_prefix(colon + 1);
  }
  return out;
}

}  // namespace doppel::core
