// A pipeline's stages each hold a slice of the adapter arena and of the optimizer state; the
// checkpoint and the PEFT adapter are written whole, as a single process writes them, by the lead.
#pragma once

#include <optional>

#include "recipes/parallel/groups.h"
#include "recipes/run_checkpoint.h"

namespace hone {

// On the lead (world rank 0) of a pipelined run: the whole model's arena and optimizer state,
// gathered from replica 0's stages (every replica holds the same). Elsewhere, or with one stage
// (the run's own state is whole), nullopt. Every rank calls it at the same point.
std::optional<WholeState> gather_whole_state(const Run& run, const Parallel& par);

// Writes the PEFT adapter of the whole model from `whole` (a pipeline) or the run's own adapters.
void save_whole_peft_adapter(const std::string& dir, const Run& run, const WholeState* whole);

}  // namespace hone
