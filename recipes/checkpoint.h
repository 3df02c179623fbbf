// Training checkpoints: one HDF5 file holding named tensors (adapter, optimizer moments, ...)
// and named strings (resolved recipe, data cursor, RNG states, metrics). This file is the only
// one that touches HDF5.
#pragma once

#include <map>
#include <string>

#include "autograd/tensor.h"

namespace hone {

struct CheckpointData {
  std::map<std::string, Tensor> tensors;       // '/'-separated names become HDF5 groups
  std::map<std::string, std::string> strings;  // stored as string datasets under text/
};

// Writes `<path>.tmp` with HDF5, closes it, fsyncs and renames it over `path`: a crash at any
// point leaves either the old file or the new one, never a torn one.
void write_checkpoint(const std::string& path, const CheckpointData& data);

// Reads every tensor (F32, F64, I32, I64) and every string. Errors name the file.
CheckpointData read_checkpoint(const std::string& path);

}  // namespace hone
