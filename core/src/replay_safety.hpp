#pragma once
// Rails that keep a shadowing pipeline from hurting production by mistake (docs/guide/replay.md,
// "Safety rails"). They read the stages' options as written (a live capture's `interface`,
// `port`/`ports` and `host`; a replaying output's `url`), so they apply to any plugin that takes
// those options, and are lifted by options the replaying output declares.
#include <string>
#include <vector>

#include "pipeline_graph.hpp"

namespace doppel::core {

// An error (at the output's `url`) for each output that replays to an address of this machine
// (or to the capture's `host`) on a port a live capture feeding it captures: production traffic
// replayed into production doubles every write. Lifted by `allow_replay_to_capture = true`.
// `nodes` must have their fed_by set.
void check_replay_targets(const std::vector<StageNode>& nodes, std::vector<ConfigError>& errors);

// A warning for each output that replays requests of any method (no `method` stage upstream)
// without `replay_writes = true`: POST, PUT, PATCH and DELETE change the target's state.
std::vector<std::string> replay_write_warnings(const PipelineGraph& graph);

}  // namespace doppel::core
