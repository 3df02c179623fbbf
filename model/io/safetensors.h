// safetensors files: a u64 little-endian header length N, N bytes of JSON header
// ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}), then
// the byte buffer the offsets index. Reading memory-maps the file; the tensors share the map.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "autograd/tensor.h"
#include "model/layer_range.h"  // TensorFilter

namespace hone {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;  // "__metadata__", empty when absent
  std::vector<std::string> files;               // the file(s) read: one, or every shard
};

// Largest JSON header accepted (the reference implementation's limit is the same 100 MB).
constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

// Reads and validates one file (every check of the format spec: header length, UTF-8 JSON object,
// entry fields, dtype, shape, offsets in range and matching numel × dtype size, the buffer covered
// contiguously with no overlap or hole, no duplicate keys). Errors read "<path>: <problem>".
// Supported dtypes: F32, F64, F16, BF16, I32, I64; other spec dtypes (I8, U8, BOOL, F8_*, ...) are
// rejected by name. Tensors whose data is not aligned to their element size are copied.
// With `keep`, only the tensors it accepts are returned: the header is still checked in full,
// but no other tensor's data is touched (a pipeline stage maps the file and reads its own).
SafetensorsFile read_safetensors(const std::string& path, const TensorFilter& keep = {});

// Reads a sharded checkpoint from its index file (model.safetensors.index.json, with a
// "weight_map": {tensor name: shard file name}); every mapped tensor must be in its shard. Shard
// files are resolved relative to the index's folder. Errors name the index file. The metadata is
// the union of the shards' "__metadata__". With `keep`, names it rejects are skipped before their
// shard is opened: a shard holding only such tensors is not read (nor needs to exist).
SafetensorsFile read_safetensors_index(const std::string& index_path,
                                       const TensorFilter& keep = {});

// Writes `tensors` (keys sorted, data packed in key order) with `metadata` as "__metadata__".
// The header is padded with spaces to a multiple of 8 bytes so every tensor starts 8-byte aligned.
// Writes path + ".tmp", fsyncs, renames over `path`: a failure never leaves a half-written file.
void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace hone
