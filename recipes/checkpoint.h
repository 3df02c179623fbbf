// Training checkpoints: one HDF5 file holding named tensors (adapter, optimizer moments, ...)
// and named strings (resolved recipe, data cursor, RNG states, metrics). This file is the only
// one that touches HDF5.
//
// Integrity: every dataset's checksum (over its name, type, shape and bytes as written) is stored
// in a manifest, itself checksummed, and HDF5's own metadata uses the format version that
// checksums it too. Reading verifies all of it, so a corrupt file is refused, never half-used.
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
// point leaves either the old file or the new one, never a torn one. Errors name the file and give
// the OS's reason ("No space left on device", "File too large", ...); the .tmp is removed.
void write_checkpoint(const std::string& path, const CheckpointData& data);

// Reads every tensor (F32, F64, I32, I64) and every string and verifies each against its
// checksum. Errors name the file (and the dataset): a corrupt, truncated or unverifiable file
// (one without checksums, from an hone before them) is refused.
CheckpointData read_checkpoint(const std::string& path);

}  // namespace hone
