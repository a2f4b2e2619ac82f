#pragma once
// Turns a PipelineSpec into a checked graph of configured stages: plugins resolved, options
// validated, factories run, `from` edges typed by the kinds they carry, loops and unread
// stages refused. Every problem becomes a ConfigError with its position.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pipeline_file.hpp"
#include "plugin_registry.hpp"

namespace doppel::core {

struct StageEdge {
  int to = -1;
  KindSet kinds;             // what travels on this edge
  SourcePosition position;   // the `from` entry that made it
  bool closes_loop = false;  // an edge back into a loop (process -> http -> process)
  bool takes_every_kind = false;  // the reading stage accepts every kind

  // Whether `message` goes along this edge. When the reader accepts every kind, the message
  // is not even looked at: emit_batch hands on messages built on other threads, and reading
  // each one there costs a cache miss.
  bool carries(const Message& message) const { return takes_every_kind || kinds.contains(message.kind); }
};

struct StageNode {
  const StageSpec* spec = nullptr;
  const PluginDefinition* definition = nullptr;
  std::filesystem::path library;
  std::unique_ptr<Stage> stage;
  KindSet produces;  // what the configured instance creates
  KindSet in;        // what reaches it
  KindSet external_in;  // test mode: what the left-out inputs it reads would have sent
  KindSet out;       // what leaves it
  std::vector<int> upstream;
  std::vector<StageEdge> downstream;
  int component = -1;  // strongly connected component, in topological order
  // The inputs whose messages reach this stage (through any path), and the overflow policy
  // that follows from them: `drop` when one of them is live, `block` otherwise. An input's
  // is its own. What a stage with an `overflow` option does when the option is left out.
  std::vector<int> fed_by;
  OverflowPolicy overflow = OverflowPolicy::block;
};

// A comparator as configured: declared ([comparators.NAME]) or a stock one used by name.
struct ComparatorNode {
  const PluginDefinition* definition = nullptr;
  std::unique_ptr<Comparator> comparator;
};

struct PipelineGraph {
  PipelineSpec spec;
  std::vector<StageNode> stages;
  std::map<std::string, ComparatorNode, std::less<>> comparators;  // by the name rules use
  std::vector<std::vector<int>> components;  // SCCs, upstream first

  int find(std::string_view stage_name) const;
};

// Most stages a pipeline may have. Each stage runs on a thread of its own behind a queue of
// its own (runtime.hpp), so the number of stages is the number of threads; real pipelines
// have a handful to a few dozen. A file of thousands is refused at validation, before any
// stage is configured, rather than starting thousands of threads.
inline constexpr std::size_t kMaxStages = 256;

enum class BuildMode {
  run,   // every stage
  test,  // inputs and outputs are left out: `doppel test` injects and observes in between
};

// nullptr when any error was found (all of them are in `errors`, sorted by position).
std::unique_ptr<PipelineGraph> build_graph(PipelineSpec spec, const PluginRegistry& registry,
                                           std::vector<ConfigError>& errors, BuildMode mode = BuildMode::run);

void sort_errors(std::vector<ConfigError>& errors);

// How a checked graph behaves when a stage cannot keep up, for `doppel validate`: one line
// per edge (wait for room, or drop and count) and per stage with an `overflow` option (the
// value in force and why). A stage explicitly set to drop while only inputs that can wait
// feed it adds a warning (`file:line:col: warning: ...`).
std::string describe_overflow(const PipelineGraph& graph, std::vector<std::string>& warnings);

}  // namespace doppel::core
