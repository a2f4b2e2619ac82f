#include "pipeline_file.hpp"

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <toml++/toml.h>

#include "doppel/units.hpp"
#include "privileges.hpp"

namespace doppel::core {
namespace fs = std::filesystem;

const std::vector<std::string>& reserved_stage_keys() {
  static const std::vector<std::string> keys = {"plugin", "from", "queue_capacity", "queue_bytes"};
  return keys;
}

const std::vector<OptionSpec>& pipeline_settings_schema() {
  static const std::vector<OptionSpec> schema = {
      option("name", OptionType::string, "Name of the pipeline, shown in logs and reports").default_value(""),
      option("plugin_dirs", OptionType::string_list,
             "Extra directories to load plugin libraries from, relative to this file")
          .default_value(Value::array({})),
      option("queue_capacity", OptionType::integer,
             "Messages each stage's input queue holds at most; a full queue makes live inputs drop (counted as "
             "queue_full) and file inputs wait. `queue_bytes` is usually the bound that is reached first")
          .default_value(1000000),
      option("queue_bytes", OptionType::size,
             "Bytes (payloads plus a few hundred per message) each stage's input queue holds at most: what lets a "
             "stage stall for a few hundred milliseconds behind a live capture before anything is dropped")
          .default_value("64MiB"),
      option("stats_interval", OptionType::duration, "How often the stats line is printed on stderr; \"0s\" disables")
          .default_value("5s"),
      option("drain_timeout", OptionType::duration,
             "On SIGINT/SIGTERM or end of input: how long in-flight work may take to finish before it is dropped "
             "(counted as `shutdown`)")
          .default_value("30s"),
      option("decision_ttl", OptionType::duration,
             "How long a filter remembers its decision on a request, so that the request's responses follow it")
          .default_value("2m"),
      option("decision_capacity", OptionType::integer,
             "Most request decisions a filter remembers; the oldest are forgotten first (counted)")
          .default_value(1000000),
      option("metrics", OptionType::string,
             "Address to serve Prometheus metrics on at /metrics: \"127.0.0.1:9464\", \"[::1]:9464\", "
             "\"localhost:9464\" (resolved when the file is read), or \":9464\" for every interface; the port is a "
             "number from 1 to 65535; empty disables")
          .default_value(""),
      option("exit_after", OptionType::duration,
             "Stop the inputs and drain after this long (GoReplay: --exit-after); \"0s\" runs until the inputs end")
          .default_value("0s"),
      option("user", OptionType::string,
             "Started as root, `doppel run` of a pipeline that captures live works as this user (a name or a "
             "numeric uid) from the moment its stages start, keeping only the capabilities that opening a capture "
             "needs until every stage has started, and none after; the files the pipeline reads and writes must be "
             "open to this user. \"root\" keeps root's privileges for the whole run (not recommended). Ignored "
             "when not started as root")
          .default_value("nobody"),
  };
  return schema;
}

namespace {

struct Converter {
  std::shared_ptr<const std::string> file;

  SourcePosition pos(const toml::source_region& r) const {
    return SourcePosition{file, r.begin.line, r.begin.column};
  }

  Value convert(const toml::node& node, SourcePosition at) const {
    Value v;
    if (auto* t = node.as_table()) {
      Value::Table table;
      for (auto&& [key, child] : *t) {
        // Tables ([section.name] headers) are located by their header, values by their key.
        SourcePosition kp = (child.is_table() || !key.source().begin.line) ? pos(child.source()) : pos(key.source());
        table.emplace_back(std::string(key.str()), convert(child, kp));
      }
      v = Value(std::move(table));
    } else if (auto* a = node.as_array()) {
      Value::Array array;
      for (auto&& child : *a) array.push_back(convert(child, child.source().begin.line ? pos(child.source()) : at));
      v = Value(std::move(array));
    } else if (auto* s = node.as_string()) {
      v = Value(std::string(s->get()));
    } else if (auto* i = node.as_integer()) {
      v = Value(static_cast<std::int64_t>(i->get()));
    } else if (auto* f = node.as_floating_point()) {
      v = Value(f->get());
    } else if (auto* b = node.as_boolean()) {
      v = Value(b->get());
    } else {
      // Dates and times are kept as their TOML text: options that take them parse it.
      std::ostringstream text;
      if (auto* d = node.as_date()) text << d->get();
      else if (auto* tm = node.as_time()) text << tm->get();
      else if (auto* dt = node.as_date_time()) text << dt->get();
      v = Value(text.str());
    }
    v.position = at;
    return v;
  }
};

std::optional<Role> role_of_section(std::string_view section) {
  for (Role r : {Role::input, Role::filter, Role::middleware, Role::output, Role::comparator})
    if (role_section(r) == section) return r;
  return std::nullopt;
}

void read_stage(const std::string& name, const Value& table, Role role, PipelineSpec& spec,
                std::vector<ConfigError>& errors) {
  StageSpec stage;
  stage.name = name;
  stage.role = role;
  stage.position = table.position;
  stage.options = table;
  const std::string where = std::string(role_section(role)) + "." + name;
  if (!table.is_table()) {
    errors.emplace_back(table.position, where, "[" + excerpt_for_message(where) + "] must be a table");
    return;
  }
  const Value* plugin = table.find("plugin");
  if (!plugin) {
    errors.emplace_back(table.position, where + ".plugin",
                        "[" + excerpt_for_message(where) + "] has no `plugin = \"...\"` naming what implements it");
  } else if (!plugin->is_string()) {
    errors.emplace_back(plugin->position, where + ".plugin", "`plugin` must be a string");
  } else {
    stage.plugin = plugin->as_string();
    stage.plugin_position = plugin->position;
  }
  if (const Value* from = table.find("from")) {
    stage.has_from = true;
    stage.from_position = from->position;
    if (from->is_string()) {
      stage.from.push_back({from->as_string(), from->position});
    } else if (from->is_array()) {
      for (const auto& item : from->as_array()) {
        if (item.is_string()) stage.from.push_back({item.as_string(), item.position});
        else errors.emplace_back(item.position, where + ".from", "`from` must list stage names (strings)");
      }
    } else {
      errors.emplace_back(from->position, where + ".from", "`from` must be a list of stage names");
    }
  }
  if (const Value* q = table.find("queue_capacity")) {
    if (!q->is_integer() || q->as_integer() <= 0)
      errors.emplace_back(q->position, where + ".queue_capacity", "`queue_capacity` must be a positive integer");
    else stage.queue_capacity = static_cast<std::size_t>(q->as_integer());
  }
  if (const Value* q = table.find("queue_bytes")) {
    std::optional<std::uint64_t> bytes;
    try {
      if (q->is_integer() && q->as_integer() > 0) bytes = static_cast<std::uint64_t>(q->as_integer());
      else if (q->is_string()) bytes = parse_size(q->as_string());
    } catch (const std::invalid_argument&) {
    }
    if (!bytes || *bytes == 0)
      errors.emplace_back(q->position, where + ".queue_bytes",
                          "`queue_bytes` must be a positive size such as \"64MiB\" or a number of bytes");
    else stage.queue_bytes = *bytes;
  }
  if (role == Role::comparator) spec.comparators.push_back(std::move(stage));
  else spec.stages.push_back(std::move(stage));
}

std::optional<PipelineSpec> convert_document(const toml::table& doc, const std::string& file_name,
                                             std::vector<ConfigError>& errors) {
  Converter conv{std::make_shared<const std::string>(file_name)};
  Value root = conv.convert(doc, SourcePosition{conv.file, 1, 1});
  PipelineSpec spec;
  spec.file = file_name;
  fs::path base_dir = fs::path(file_name).parent_path();
  static const std::vector<std::string> sections = {"pipeline", "inputs",      "filters", "middleware",
                                                    "outputs",  "comparators", "tests"};
  for (const auto& [key, value] : root.as_table()) {
    if (key == "pipeline") {
      Options settings = Options::validate(value, pipeline_settings_schema(), errors);
      if (!value.is_table()) continue;
      auto& s = spec.settings;
      s.name = settings.string("name");
      for (const auto& dir : settings.strings("plugin_dirs")) {
        fs::path p(dir);
        s.plugin_dirs.push_back(p.is_absolute() ? p : base_dir / p);
      }
      if (settings.integer("queue_capacity") <= 0)
        errors.emplace_back(settings.position("queue_capacity"), "queue_capacity", "`queue_capacity` must be positive");
      else s.queue_capacity = static_cast<std::size_t>(settings.integer("queue_capacity"));
      if (settings.size("queue_bytes") == 0)
        errors.emplace_back(settings.position("queue_bytes"), "queue_bytes", "`queue_bytes` must be positive");
      else s.queue_bytes = settings.size("queue_bytes");
      s.stats_interval = settings.duration("stats_interval");
      s.drain_timeout = settings.duration("drain_timeout");
      s.decision_ttl = settings.duration("decision_ttl");
      s.decision_capacity = static_cast<std::size_t>(std::max<std::int64_t>(1, settings.integer("decision_capacity")));
      if (std::string metrics = settings.string("metrics"); !metrics.empty()) {
        try {
          s.metrics = parse_listen_address(metrics);
        } catch (const std::invalid_argument& e) {
          errors.emplace_back(settings.position("metrics"), "metrics", "option \"metrics\": " + std::string(e.what()));
        }
      }
      s.exit_after = settings.duration("exit_after");
      s.user = settings.string("user");
      if (std::string error; !lookup_user(s.user, error))
        errors.emplace_back(settings.position("user"), "user", "option \"user\": " + error);
      continue;
    }
    if (key == "tests") {
      spec.tests = value;
      spec.tests_position = value.position;
      continue;
    }
    auto role = role_of_section(key);
    if (!role) {
      std::string msg = "unknown section [" + excerpt_for_message(key) + "]";
      auto close = closest_names(key, sections);
      if (!close.empty()) msg += "; did you mean [" + close.front() + "]?";
      msg += " (sections: pipeline, inputs, filters, middleware, outputs, comparators, tests)";
      errors.emplace_back(value.position, key, msg);
      continue;
    }
    if (!value.is_table()) {
      errors.emplace_back(value.position, key,
                          "[" + excerpt_for_message(key) + "] must hold named tables such as [" + key + ".NAME]");
      continue;
    }
    for (const auto& [name, table] : value.as_table()) read_stage(name, table, *role, spec, errors);
  }
  // TOML tables come back sorted by key; stages keep the order they were written in.
  auto by_position = [](const StageSpec& a, const StageSpec& b) {
    return std::pair(a.position.line, a.position.column) < std::pair(b.position.line, b.position.column);
  };
  std::stable_sort(spec.stages.begin(), spec.stages.end(), by_position);
  std::stable_sort(spec.comparators.begin(), spec.comparators.end(), by_position);
  return spec;
}

}  // namespace

std::optional<PipelineSpec> load_pipeline_text(std::string_view text, const std::string& file_name,
                                               std::vector<ConfigError>& errors) {
  try {
    toml::table doc = toml::parse(text, file_name);
    return convert_document(doc, file_name, errors);
  } catch (const toml::parse_error& e) {
    auto file = std::make_shared<const std::string>(file_name);
    errors.emplace_back(SourcePosition{file, e.source().begin.line, e.source().begin.column}, "",
                        "TOML syntax error: " + std::string(e.description()));
    return std::nullopt;
  }
}

std::optional<PipelineSpec> load_pipeline_file(const fs::path& path, std::vector<ConfigError>& errors) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    errors.emplace_back(SourcePosition{std::make_shared<const std::string>(path.string())}, "",
                        "cannot read pipeline file: " + std::string(std::strerror(errno)));
    return std::nullopt;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return load_pipeline_text(buffer.str(), path.string(), errors);
}

}  // namespace doppel::core
