// `hone inspect <model>`: a human-readable summary of a model on disk (config, parameter and
// tensor counts, tensor list with per-layer tensors shown once, dtypes, size on disk).
#pragma once

#include <string>

namespace hone {

// Loads `path` with load_model_files (folder, .safetensors, index or llama2.c .bin) and returns
// the report, ending in a newline. Throws Error as the loader does.
std::string inspect_report(const std::string& path);

}  // namespace hone
