// What a resume may change in the recipe. A checkpoint stores the resolved recipe it was trained
// with; resuming compares it with the recipe given now, key by key (README, "Resuming"):
//  - refused: what the saved state depends on, so the run could not continue exactly (the LoRA
//    shape, the data and its order, batch size, gradient accumulation, seeds, the optimizer kind,
//    the base model's storage dtype), and max_steps below the checkpoint's step;
//  - warned about, then resumed: legitimate changes after which the run is no longer the same run
//    (learning rate and the other optimizer settings, the schedule, gradient clipping, the run's
//    length, the thread count, moved model or data files whose contents still match);
//  - silent: what cannot touch the adapter (evaluation, checkpoint cadence, output, logging).
#pragma once

#include <string>
#include <vector>

#include "recipes/recipe.h"

namespace hone {

// Throws one Error, naming `checkpoint` and every refused key with both values; otherwise returns
// one warning per allowed change that makes this a different run. `step` is the checkpoint's.
std::vector<std::string> check_resume_changes(const std::string& checkpoint,
                                              const RecipeConfig& then, const RecipeConfig& now,
                                              int64_t step);

}  // namespace hone
