// GGUF files (llama.cpp's format; spec: ggml/docs/gguf.md): "GGUF", u32 version, u64 tensor
// count, u64 metadata count, the metadata key/values, the tensor infos (name, dims in ggml order
// ne[0] = innermost, ggml type, offset into the data section), padding to `general.alignment`
// (default 32), then the data section. Little-endian only. Reading memory-maps the file.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace hone {

struct MappedFile;

enum class GgufValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);

// ggml tensor types (ids as in ggml.h). The reader knows every current type and its block size;
// hone converts F32, F16, BF16 and Q8_0.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

struct GgmlTypeInfo {
  const char* name;
  int64_t block;  // elements per block (1 for plain types)
  int64_t bytes;  // bytes per block
};
// nullptr for an id ggml does not define (or no longer supports).
const GgmlTypeInfo* ggml_type_info(uint32_t id);
const char* ggml_type_name(GgmlType t);

// One metadata value. Integers keep their exact value (u for unsigned kinds and bool, i for
// signed), floats are widened to double, arrays hold one GgufValue per element.
struct GgufValue {
  GgufValueType type = GgufValueType::U32;
  GgufValueType elem = GgufValueType::U8;  // arrays only
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<GgufValue> items;

  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue str(std::string v);
  static GgufValue strings(const std::vector<std::string>& v);
  static GgufValue f32s(const std::vector<float>& v);
  static GgufValue i32s(const std::vector<int32_t>& v);
  // An array of any element type; every item must have type `elem`.
  static GgufValue array(GgufValueType elem, std::vector<GgufValue> items);

  bool is_int() const;    // any integer kind (not bool)
  bool is_float() const;  // F32 or F64
  // The value as int64 (integers only; false when not representable).
  bool get_int(int64_t* out) const;
};

using GgufMetadata = std::vector<std::pair<std::string, GgufValue>>;

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;        // ggml order: ne[0] is the contiguous (input-feature) dim
  uint64_t offset = 0;            // into the data section
  uint64_t nbytes = 0;            // ne product / block × block bytes
  const uint8_t* data = nullptr;  // into the map
  int64_t numel() const;
  Shape shape() const;  // row-major (ne reversed), as hone and PyTorch see it
};

struct GgufFile {
  std::string path;
  uint32_t version = 3;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;             // start of the data section in the file
  GgufMetadata metadata;                // file order
  std::vector<GgufTensorInfo> tensors;  // file order
  std::shared_ptr<MappedFile> map;

  const GgufValue* find(const std::string& key) const;
  const GgufTensorInfo* tensor(const std::string& name) const;
  // Typed getters; errors read "<path>: <key>: ...". The default is returned when absent.
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t def) const;
  double get_float(const std::string& key) const;  // F32 values come back as their shortest
  double get_float(const std::string& key, double def) const;  // decimal (1e-5f -> 1e-5)
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& def) const;
  bool get_bool(const std::string& key, bool def) const;

 private:
  friend GgufFile read_gguf(const std::string& path);
  std::map<std::string, size_t> key_index_, tensor_index_;
};

// Reads and validates the whole structure (errors "<path>: <problem>", one line): magic,
// version 3 (2 accepted: same layout), counts against the file size before any allocation,
// every string and array inside the file, known value types, unique keys and tensor names,
// general.alignment a power of two, 1..4 dims each > 0 with no overflow in their product, known
// ggml types with ne[0] a multiple of the block size, offsets aligned, data inside the file and
// no two tensors overlapping.
GgufFile read_gguf(const std::string& path);

// The tensor's values, row-major with shape info.shape(): F32, F16 and BF16 share the map; Q8_0
// is dequantized to F32. Other types throw "<path>: tensor <name>: type Q4_K is not supported".
Tensor gguf_tensor(const GgufFile& file, const GgufTensorInfo& info);

// Q8_0: blocks of 32 values as an f16 scale d = max|x|/127 and 32 int8 q = round(x/d).
// n must be a multiple of 32; dst holds n/32 * 34 bytes.
void quantize_q8_0(const float* src, uint8_t* dst, int64_t n);
void dequantize_q8_0(const uint8_t* src, float* dst, int64_t n);

struct GgufTensorOut {
  std::string name;               // at most 63 bytes (ggml's GGML_MAX_NAME)
  Tensor values;                  // row-major, any float dtype; GGUF dims are the shape reversed
  GgmlType type = GgmlType::F32;  // F32, F16, BF16 or Q8_0 (the last dim a multiple of 32)
};

// Writes GGUF v3 with alignment 32 (metadata in the given order, tensors in the given order,
// each converted to its type) through write_file_atomically: never a half-written file.
void write_gguf(const std::string& path, const GgufMetadata& metadata,
                const std::vector<GgufTensorOut>& tensors);

}  // namespace hone
