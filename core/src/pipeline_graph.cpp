#include "pipeline_graph.hpp"

#include "replay_safety.hpp"

#include <algorithm>
#include <functional>
#include <sstream>

namespace doppel::core {
namespace {

std::string list_names(const std::vector<std::string>& names) {
  if (names.empty()) return "none";
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string quoted(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "\"" : ", \"") + n + "\"";
  return out;
}

std::string stage_label(const StageSpec& s) { return std::string(role_section(s.role)) + "." + s.name; }

const LoadedPlugin* resolve_plugin(const StageSpec& s, const PluginRegistry& registry, std::vector<ConfigError>& errors) {
  if (s.plugin.empty()) return nullptr;  // already reported
  if (auto* p = registry.find(s.role, s.plugin)) return p;
  std::string msg = "unknown " + std::string(role_name(s.role)) + " plugin " + quote_for_message(s.plugin);
  auto names = registry.names(s.role);
  auto close = closest_names(s.plugin, names);
  if (!close.empty()) msg += "; did you mean " + quoted(close) + "?";
  auto elsewhere = registry.find_all(s.plugin);
  if (!elsewhere.empty())
    msg += " (\"" + s.plugin + "\" is a " + std::string(role_name(elsewhere.front()->definition->role)) +
           " plugin: declare it under [" + std::string(role_section(elsewhere.front()->definition->role)) + "." +
           s.name + "])";
  msg += " (available " + std::string(role_section(s.role)) + ": " + list_names(names) + ")";
  errors.emplace_back(s.plugin_position, stage_label(s) + ".plugin", msg);
  return nullptr;
}

// Runs a factory, turning what it throws into errors at the right place.
template <class Make>
auto configure(const StageSpec& s, Make make, std::vector<ConfigError>& errors) -> decltype(make()) {
  try {
    return make();
  } catch (const ConfigError& e) {
    SourcePosition at = e.position().line ? e.position() : s.position;
    errors.emplace_back(at, e.key(), std::string(e.what()) + " (in " + stage_label(s) + ")");
  } catch (const std::exception& e) {
    errors.emplace_back(s.position, stage_label(s),
                        "stage \"" + s.name + "\" (plugin " + s.plugin + ") failed to configure: " + e.what());
  }
  return nullptr;
}

// Tarjan's algorithm; components come out in reverse topological order.
std::vector<std::vector<int>> strongly_connected(const std::vector<StageNode>& nodes) {
  int n = static_cast<int>(nodes.size()), counter = 0;
  std::vector<int> index(n, -1), low(n, 0), stack;
  std::vector<bool> on_stack(n, false);
  std::vector<std::vector<int>> out;
  std::function<void(int)> visit = [&](int v) {
    index[v] = low[v] = counter++;
    stack.push_back(v);
    on_stack[v] = true;
    for (const auto& e : nodes[v].downstream) {
      if (index[e.to] < 0) {
        visit(e.to);
        low[v] = std::min(low[v], low[e.to]);
      } else if (on_stack[e.to]) {
        low[v] = std::min(low[v], index[e.to]);
      }
    }
    if (low[v] == index[v]) {
      std::vector<int> comp;
      int w;
      do {
        w = stack.back();
        stack.pop_back();
        on_stack[w] = false;
        comp.push_back(w);
      } while (w != v);
      std::sort(comp.begin(), comp.end());
      out.push_back(std::move(comp));
    }
  };
  for (int v = 0; v < n; ++v)
    if (index[v] < 0) visit(v);
  std::reverse(out.begin(), out.end());
  return out;
}

// A loop is legal when no kind can travel all the way round it: look for a cycle in the
// graph of edges carrying `kind` between stages that pass `kind` through.
std::vector<int> find_kind_cycle(const std::vector<StageNode>& nodes, Kind kind) {
  int n = static_cast<int>(nodes.size());
  auto forwards = [&](int v) {
    return nodes[v].definition->passes_through && nodes[v].definition->accepts.contains(kind);
  };
  std::vector<int> color(n, 0), parent(n, -1);
  std::vector<int> cycle;
  std::function<bool(int)> dfs = [&](int v) {
    color[v] = 1;
    for (const auto& e : nodes[v].downstream) {
      if (!e.kinds.contains(kind) || !forwards(e.to)) continue;
      if (color[e.to] == 1) {
        for (int w = v; w != e.to && w >= 0; w = parent[w]) cycle.push_back(w);
        cycle.push_back(e.to);
        std::reverse(cycle.begin(), cycle.end());
        return true;
      }
      if (color[e.to] == 0) {
        parent[e.to] = v;
        if (dfs(e.to)) return true;
      }
    }
    color[v] = 2;
    return false;
  };
  for (int v = 0; v < n; ++v)
    if (color[v] == 0 && forwards(v) && dfs(v)) return cycle;
  return {};
}

}  // namespace

int PipelineGraph::find(std::string_view stage_name) const {
  for (std::size_t i = 0; i < stages.size(); ++i)
    if (stages[i].spec->name == stage_name) return static_cast<int>(i);
  return -1;
}

void sort_errors(std::vector<ConfigError>& errors) {
  std::stable_sort(errors.begin(), errors.end(), [](const ConfigError& a, const ConfigError& b) {
    auto fa = a.position().file ? *a.position().file : std::string();
    auto fb = b.position().file ? *b.position().file : std::string();
    if (fa != fb) return fa < fb;
    if (a.position().line != b.position().line) return a.position().line < b.position().line;
    return a.position().column < b.position().column;
  });
}

std::unique_ptr<PipelineGraph> build_graph(PipelineSpec spec, const PluginRegistry& registry,
                                           std::vector<ConfigError>& errors, BuildMode mode) {
  auto graph = std::make_unique<PipelineGraph>();
  graph->spec = std::move(spec);
  const std::size_t errors_before = errors.size();

  if (const auto& stages = graph->spec.stages; stages.size() > kMaxStages) {
    const StageSpec& first_over = stages[kMaxStages];
    errors.emplace_back(first_over.position, stage_label(first_over),
                        "[" + excerpt_for_message(stage_label(first_over)) + "] is stage " +
                            std::to_string(kMaxStages + 1) + " of " + std::to_string(stages.size()) +
                            "; a pipeline has at most " + std::to_string(kMaxStages) +
                            " stages (each runs on a thread of its own)");
    sort_errors(errors);
    return nullptr;
  }

  // Stage names are unique across sections: `from` refers to them by name alone.
  std::map<std::string, const StageSpec*> by_name;
  for (const auto& s : graph->spec.stages) {
    auto [it, inserted] = by_name.emplace(s.name, &s);
    if (!inserted)
      errors.emplace_back(s.position, stage_label(s),
                          "stage name " + quote_for_message(s.name) + " is already used by [" +
                              stage_label(*it->second) + "] at " + it->second->position.to_string() +
                              "; stage names must be unique");
  }

  // Plugins, options, factories.
  std::vector<std::string> all_names;
  for (const auto& s : graph->spec.stages) all_names.push_back(s.name);
  for (const auto& s : graph->spec.stages) {
    if (mode == BuildMode::test && (s.role == Role::input || s.role == Role::output)) continue;
    StageNode node;
    node.spec = &s;
    const LoadedPlugin* plugin = resolve_plugin(s, registry, errors);
    if (plugin) {
      node.definition = plugin->definition;
      node.library = plugin->library;
      std::size_t before = errors.size();
      Options options = Options::validate(s.options, plugin->definition->options, errors, reserved_stage_keys());
      if (errors.size() == before && plugin->definition->create_stage)
        node.stage = configure(s, [&] { return plugin->definition->create_stage(options); }, errors);
      if (!plugin->definition->create_stage)
        errors.emplace_back(s.plugin_position, stage_label(s), "plugin \"" + s.plugin + "\" cannot run as a stage");
      else if (!node.stage && errors.size() == before)
        // A factory that returned nothing without saying why: refuse the pipeline rather than
        // run a stage that is not there (found by fuzz_pipeline_file).
        errors.emplace_back(s.plugin_position, stage_label(s), "plugin \"" + s.plugin + "\" created no stage");
    }
    // A stage left without a stage object and without an error of its own here (a missing
    // `plugin` key is reported by the file loader) still refuses the graph, with its name.
    if (!node.stage && errors.size() == errors_before)
      errors.emplace_back(s.position, stage_label(s), "[" + stage_label(s) + "] cannot be built: it has no plugin to run");
    if (s.role == Role::input && s.has_from)
      errors.emplace_back(s.from_position, stage_label(s) + ".from",
                          "inputs read from the outside world, not from other stages: remove `from`");
    if (s.role != Role::input && !s.has_from)
      errors.emplace_back(s.position, stage_label(s) + ".from",
                          "[" + stage_label(s) + "] needs `from = [\"STAGE\", ...]` naming the stages it reads");
    for (const auto& f : s.from) {
      if (by_name.count(f.stage)) continue;
      std::string msg = "`from` names " + quote_for_message(f.stage) + ", which is not a stage";
      auto close = closest_names(f.stage, all_names);
      if (!close.empty()) msg += "; did you mean " + quoted(close) + "?";
      msg += " (stages: " + list_names(all_names) + ")";
      errors.emplace_back(f.position, stage_label(s) + ".from", msg);
    }
    if (s.role != Role::input && s.has_from && s.from.empty())
      errors.emplace_back(s.from_position, stage_label(s) + ".from", "`from` is empty: name the stages it reads");
    graph->stages.push_back(std::move(node));
  }

  // Declared comparators.
  for (const auto& c : graph->spec.comparators) {
    const LoadedPlugin* plugin = resolve_plugin(c, registry, errors);
    if (c.has_from)
      errors.emplace_back(c.from_position, stage_label(c) + ".from",
                          "comparators are used by compare rules, not wired with `from`");
    if (!plugin) continue;
    std::size_t before = errors.size();
    Options options = Options::validate(c.options, plugin->definition->options, errors, reserved_stage_keys());
    if (errors.size() != before) continue;
    auto comparator = configure(c, [&] { return plugin->definition->create_comparator(options); }, errors);
    if (comparator) graph->comparators.emplace(c.name, ComparatorNode{plugin->definition, std::move(comparator)});
  }
  if (errors.size() != errors_before) {
    sort_errors(errors);
    return nullptr;
  }

  // Edges.
  auto& nodes = graph->stages;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const StageSpec& s = *nodes[i].spec;
    nodes[i].produces = nodes[i].stage->produces().value_or(nodes[i].definition->produces);
    for (const auto& f : s.from) {
      int from = graph->find(f.stage);
      if (from < 0) {
        // Not a stage here: an input left out in test mode (messages are injected in its
        // place), or a name already reported as unknown.
        if (auto left_out = by_name.find(f.stage); left_out != by_name.end())
          if (auto* p = registry.find(left_out->second->role, left_out->second->plugin))
            nodes[i].external_in = nodes[i].external_in | p->definition->produces;
        continue;
      }
      if (from == static_cast<int>(i)) {
        errors.emplace_back(f.position, stage_label(s) + ".from", "stage \"" + s.name + "\" cannot read itself");
        continue;
      }
      nodes[from].downstream.push_back(StageEdge{static_cast<int>(i), {}, f.position, false});
      nodes[i].upstream.push_back(from);
    }
  }

  // What flows where: iterate to a fixed point (loops feed back).
  for (auto& n : nodes) n.out = n.produces;
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      KindSet in = nodes[i].external_in & nodes[i].definition->accepts;
      for (int u : nodes[i].upstream) in = in | (nodes[u].out & nodes[i].definition->accepts);
      KindSet out = nodes[i].produces | (nodes[i].definition->passes_through ? in : KindSet{});
      if (!(in == nodes[i].in) || !(out == nodes[i].out)) {
        nodes[i].in = in;
        nodes[i].out = out;
        changed = true;
      }
    }
  }
  for (auto& n : nodes) {
    for (auto& e : n.downstream) {
      const StageNode& to = nodes[e.to];
      e.kinds = n.out & to.definition->accepts;
      e.takes_every_kind = to.definition->accepts == KindSet::all();
      if (!e.kinds.empty()) continue;
      std::string msg = "stage \"" + to.spec->name + "\" (plugin " + to.definition->name + ", accepts " +
                        to.definition->accepts.to_string() + ") reads \"" + n.spec->name + "\", which ";
      msg += n.out.empty() ? std::string("emits nothing") : "emits only " + n.out.to_string();
      if (n.out.empty() && n.spec->role == Role::output)
        msg += " (outputs emit responses only when told to, e.g. track_response = true)";
      errors.emplace_back(e.position, stage_label(*to.spec) + ".from", msg);
    }
  }

  // Loops a message could circle forever.
  for (Kind k : {Kind::request, Kind::response, Kind::replay, Kind::verdict}) {
    auto cycle = find_kind_cycle(nodes, k);
    if (cycle.empty()) continue;
    std::string path;
    for (int v : cycle) path += nodes[v].spec->name + " -> ";
    path += nodes[cycle.front()].spec->name;
    errors.emplace_back(nodes[cycle.front()].spec->from_position, stage_label(*nodes[cycle.front()].spec) + ".from",
                        "loop " + path + " would carry " + std::string(kind_name(k)) +
                            " messages round forever; a loop is legal only when no kind can travel all the way round");
  }

  // Stages whose messages nobody reads (in test mode the outputs are left out on purpose).
  for (auto& n : nodes) {
    if (n.out.empty() || mode == BuildMode::test) continue;
    bool read = false;
    for (const auto& e : n.downstream) read |= !(e.kinds.empty());
    if (read) continue;
    std::string msg = "stage \"" + n.spec->name + "\" emits " + n.out.to_string() +
                      " but no stage reads it: add it to a `from` list";
    if (n.spec->role == Role::output) msg += ", or stop it emitting (e.g. track_response = false)";
    else msg += ", or remove it";
    errors.emplace_back(n.spec->position, stage_label(*n.spec), msg);
  }

  // Comparators the stages will ask for: declared, or stock plugins usable without options.
  for (auto& n : nodes) {
    for (const auto& ref : n.stage->comparator_references()) {
      if (graph->comparators.count(ref.name)) continue;
      std::string msg;
      if (auto* plugin = registry.find(Role::comparator, ref.name)) {
        std::vector<ConfigError> option_errors;
        Options options = Options::validate(Value(Value::Table{}), plugin->definition->options, option_errors);
        if (option_errors.empty()) {
          try {
            graph->comparators.emplace(
                ref.name, ComparatorNode{plugin->definition, plugin->definition->create_comparator(options)});
            continue;
          } catch (const std::exception& e) {
            msg = "comparator \"" + ref.name + "\" cannot be used without options (" + e.what() + ")";
          }
        } else {
          msg = "comparator plugin \"" + ref.name + "\" needs options: declare [comparators.NAME] with plugin = \"" +
                ref.name + "\" and refer to NAME";
        }
      } else {
        std::vector<std::string> names;
        for (const auto& [name, c] : graph->comparators) names.push_back(name);
        for (const auto& name : registry.names(Role::comparator)) names.push_back(name);
        msg = "unknown comparator \"" + ref.name + "\"";
        auto close = closest_names(ref.name, names);
        if (!close.empty()) msg += "; did you mean " + quoted(close) + "?";
        msg += " (declared or stock comparators: " + list_names(names) + ")";
      }
      errors.emplace_back(ref.position, stage_label(*n.spec), msg);
    }
  }

  if (errors.size() != errors_before) {
    sort_errors(errors);
    return nullptr;
  }

  // Components upstream first; an edge inside a component that goes "backwards" in file
  // order closes the loop.
  graph->components = strongly_connected(nodes);
  for (std::size_t c = 0; c < graph->components.size(); ++c)
    for (int v : graph->components[c]) nodes[v].component = static_cast<int>(c);
  for (std::size_t i = 0; i < nodes.size(); ++i)
    for (auto& e : nodes[i].downstream)
      e.closes_loop = nodes[e.to].component == nodes[i].component && e.to < static_cast<int>(i);

  // Overflow follows what feeds a stage: everything a live input reaches drops rather than
  // stall it; what only files and NATS reach waits (they can be paused without loss).
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].spec->role != Role::input) continue;
    bool live = nodes[i].stage->overflow_policy() == OverflowPolicy::drop;
    std::vector<bool> seen(nodes.size(), false);
    std::vector<int> todo{static_cast<int>(i)};
    seen[i] = true;
    while (!todo.empty()) {
      int v = todo.back();
      todo.pop_back();
      nodes[v].fed_by.push_back(static_cast<int>(i));
      if (live) nodes[v].overflow = OverflowPolicy::drop;
      for (const auto& e : nodes[v].downstream)
        if (!seen[e.to]) {
          seen[e.to] = true;
          todo.push_back(e.to);
        }
    }
  }
  if (mode == BuildMode::run) {
    check_replay_targets(nodes, errors);
    if (errors.size() != errors_before) {
      sort_errors(errors);
      return nullptr;
    }
  }
  return graph;
}

namespace {

// Whether the stage's plugin has an `overflow` option (a queue of its own).
bool has_overflow_option(const StageNode& node) {
  return std::any_of(node.definition->options.begin(), node.definition->options.end(),
                     [](const OptionSpec& o) { return o.name == "overflow"; });
}

std::string input_names(const PipelineGraph& graph, const StageNode& node, bool live) {
  std::string out;
  for (int i : node.fed_by) {
    if ((graph.stages[i].overflow == OverflowPolicy::drop) != live) continue;
    out += (out.empty() ? "" : ", ") + graph.stages[i].spec->name;
  }
  return out;
}

}  // namespace

std::string describe_overflow(const PipelineGraph& graph, std::vector<std::string>& warnings) {
  std::ostringstream out;
  out << "when a stage cannot keep up (wait = back-pressure, nothing lost; drop = counted as queue_full):\n";
  for (const auto& n : graph.stages) {
    for (const auto& e : n.downstream) {
      const auto& to = graph.stages[e.to];
      bool live_input = n.spec->role == Role::input && n.overflow == OverflowPolicy::drop;
      const char* policy = live_input || e.closes_loop ? "drop" : "wait";
      std::string why = live_input ? "live input" : e.closes_loop ? "edge closing a loop" : "";
      out << "  " << n.spec->name << " -> " << to.spec->name << ": " << policy << (why.empty() ? "" : " (" + why + ")")
          << "\n";
    }
  }
  for (const auto& n : graph.stages) {
    if (n.spec->role == Role::input || !has_overflow_option(n)) continue;
    const Value* written = n.spec->options.find("overflow");
    std::string live = input_names(graph, n, true), waiting = input_names(graph, n, false);
    out << "  " << n.spec->name << " (" << n.definition->name << " queue): ";
    if (written && written->is_string() && written->as_string() != "auto") {
      out << written->as_string() << " (set in the file)\n";
      if (written->as_string() == "drop" && live.empty() && !waiting.empty())
        warnings.push_back(written->position.to_string() + ": warning: [" + std::string(role_section(n.spec->role)) +
                           "." + n.spec->name + "] overflow = \"drop\" but only inputs that can wait feed it (" +
                           waiting + "): messages will be dropped whenever it falls behind; remove the line to "
                           "wait instead");
      continue;
    }
    if (n.overflow == OverflowPolicy::drop) out << "drop (default: fed by live input " << live << ")\n";
    else if (!waiting.empty()) out << "wait (default: fed by " << waiting << ", which can wait)\n";
    else out << "wait (default)\n";
  }
  return out.str();
}

}  // namespace doppel::core
