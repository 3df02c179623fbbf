// The GGUF reader (gguf.h): read_gguf's validation, the metadata getters, tensor values from the
// map, and the format's type tables; write_gguf is in gguf_writer.cpp.
#include "model/io/gguf.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "autograd/kernels/quant.h"
#include "model/io/gguf_internal.h"
#include "model/io/mapped_file.h"

namespace hone {

using namespace gguf_detail;

namespace {

// Smallest encoding of one value of a type: bounds array lengths before anything is allocated.
uint64_t min_value_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::Bool:
      return 1;
    case GgufValueType::U16:
    case GgufValueType::I16:
      return 2;
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::F32:
      return 4;
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::F64:
    case GgufValueType::String:
      return 8;
    case GgufValueType::Array:
      return 12;
  }
  return 1;
}

bool known_value_type(uint32_t t) {
  return t <= static_cast<uint32_t>(GgufValueType::F64);
}

// A float32 read back as the shortest decimal that round-trips it, so 1e-5f is 1e-5, not
// 9.99999974738e-06: configs read from GGUF then equal the ones they were written from.
double float_to_double_shortest(float f) {
  if (!std::isfinite(f)) return f;
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf - 1, f);
  *r.ptr = 0;
  return std::strtod(buf, nullptr);
}

// A bounds-checked reader over the mapped bytes.
struct Cursor {
  const std::string& path;
  const uint8_t* p;
  uint64_t size;
  uint64_t pos = 0;

  uint64_t left() const { return size - pos; }
  void need(uint64_t n, const std::string& what) const {
    if (n > left())
      fail(path, what + " at byte " + std::to_string(pos) + " needs " + std::to_string(n) +
                     " bytes but the file has " + std::to_string(left()) +
                     " left (truncated or corrupt file)");
  }
  template <class T>
  T get(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str(const std::string& what) {
    const uint64_t at = pos;
    uint64_t n = get<uint64_t>(what + " length");
    if (n > left())
      fail(path, what + " at byte " + std::to_string(at) + ": string length " + std::to_string(n) +
                     " runs past the end of the file (" + std::to_string(left()) + " bytes left)");
    std::string s(reinterpret_cast<const char*>(p + pos), static_cast<size_t>(n));
    pos += n;
    return s;
  }
};

GgufValue read_value(Cursor& c, GgufValueType t, const std::string& key, int depth) {
  GgufValue v;
  v.type = t;
  const std::string what = "key \"" + key + "\"";
  switch (t) {
    case GgufValueType::U8:
      v.u = c.get<uint8_t>(what);
      break;
    case GgufValueType::I8:
      v.i = c.get<int8_t>(what);
      break;
    case GgufValueType::U16:
      v.u = c.get<uint16_t>(what);
      break;
    case GgufValueType::I16:
      v.i = c.get<int16_t>(what);
      break;
    case GgufValueType::U32:
      v.u = c.get<uint32_t>(what);
      break;
    case GgufValueType::I32:
      v.i = c.get<int32_t>(what);
      break;
    case GgufValueType::U64:
      v.u = c.get<uint64_t>(what);
      break;
    case GgufValueType::I64:
      v.i = c.get<int64_t>(what);
      break;
    case GgufValueType::F32:
      v.f = float_to_double_shortest(c.get<float>(what));
      break;
    case GgufValueType::F64:
      v.f = c.get<double>(what);
      break;
    case GgufValueType::Bool: {
      uint8_t b = c.get<uint8_t>(what);
      if (b > 1) fail(c.path, what + ": bool value " + std::to_string(b) + " (must be 0 or 1)");
      v.u = b;
      break;
    }
    case GgufValueType::String:
      v.s = c.str(what);
      break;
    case GgufValueType::Array: {
      if (depth >= kMaxArrayDepth)
        fail(c.path, what + ": arrays nested deeper than " + std::to_string(kMaxArrayDepth));
      uint32_t et = c.get<uint32_t>(what + " array type");
      if (!known_value_type(et))
        fail(c.path, what + ": unknown array element type " + std::to_string(et));
      v.elem = static_cast<GgufValueType>(et);
      const uint64_t at = c.pos;
      uint64_t n = c.get<uint64_t>(what + " array length");
      const uint64_t min = min_value_size(v.elem);
      if (n > c.left() / min)
        fail(c.path, what + " at byte " + std::to_string(at) + ": array length " +
                         std::to_string(n) + " of " + gguf_value_type_name(v.elem) +
                         " runs past the end of the file (" + std::to_string(c.left()) +
                         " bytes left)");
      v.items.reserve(static_cast<size_t>(n));
      for (uint64_t k = 0; k < n; ++k) v.items.push_back(read_value(c, v.elem, key, depth + 1));
      break;
    }
  }
  return v;
}

std::string show_ne(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t k = 0; k < ne.size(); ++k) s += (k ? ", " : "") + std::to_string(ne[k]);
  return s + "]";
}

}  // namespace

const char* gguf_value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
      return "UINT8";
    case GgufValueType::I8:
      return "INT8";
    case GgufValueType::U16:
      return "UINT16";
    case GgufValueType::I16:
      return "INT16";
    case GgufValueType::U32:
      return "UINT32";
    case GgufValueType::I32:
      return "INT32";
    case GgufValueType::F32:
      return "FLOAT32";
    case GgufValueType::Bool:
      return "BOOL";
    case GgufValueType::String:
      return "STRING";
    case GgufValueType::Array:
      return "ARRAY";
    case GgufValueType::U64:
      return "UINT64";
    case GgufValueType::I64:
      return "INT64";
    case GgufValueType::F64:
      return "FLOAT64";
  }
  return "?";
}

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
  // Block sizes and bytes per block from ggml's type traits.
  static const GgmlTypeInfo table[40] = {
      {"F32", 1, 4},        {"F16", 1, 2},       {"Q4_0", 32, 18},     {"Q4_1", 32, 20},
      {nullptr, 0, 0},      {nullptr, 0, 0},     {"Q5_0", 32, 22},     {"Q5_1", 32, 24},
      {"Q8_0", 32, 34},     {"Q8_1", 32, 36},    {"Q2_K", 256, 84},    {"Q3_K", 256, 110},
      {"Q4_K", 256, 144},   {"Q5_K", 256, 176},  {"Q6_K", 256, 210},   {"Q8_K", 256, 292},
      {"IQ2_XXS", 256, 66}, {"IQ2_XS", 256, 74}, {"IQ3_XXS", 256, 98}, {"IQ1_S", 256, 50},
      {"IQ4_NL", 32, 18},   {"IQ3_S", 256, 110}, {"IQ2_S", 256, 82},   {"IQ4_XS", 256, 136},
      {"I8", 1, 1},         {"I16", 1, 2},       {"I32", 1, 4},        {"I64", 1, 8},
      {"F64", 1, 8},        {"IQ1_M", 256, 56},  {"BF16", 1, 2},       {nullptr, 0, 0},
      {nullptr, 0, 0},      {nullptr, 0, 0},     {"TQ1_0", 256, 54},   {"TQ2_0", 256, 66},
      {nullptr, 0, 0},      {nullptr, 0, 0},     {nullptr, 0, 0},      {"MXFP4", 32, 17},
  };
  if (id >= 40 || !table[id].name) return nullptr;
  return &table[id];
}

const char* ggml_type_name(GgmlType t) {
  const GgmlTypeInfo* i = ggml_type_info(static_cast<uint32_t>(t));
  return i ? i->name : "?";
}

GgufValue GgufValue::u32(uint32_t v) {
  GgufValue x;
  x.type = GgufValueType::U32;
  x.u = v;
  return x;
}
GgufValue GgufValue::i32(int32_t v) {
  GgufValue x;
  x.type = GgufValueType::I32;
  x.i = v;
  return x;
}
GgufValue GgufValue::u64(uint64_t v) {
  GgufValue x;
  x.type = GgufValueType::U64;
  x.u = v;
  return x;
}
GgufValue GgufValue::f32(float v) {
  GgufValue x;
  x.type = GgufValueType::F32;
  x.f = v;
  return x;
}
GgufValue GgufValue::boolean(bool v) {
  GgufValue x;
  x.type = GgufValueType::Bool;
  x.u = v;
  return x;
}
GgufValue GgufValue::str(std::string v) {
  GgufValue x;
  x.type = GgufValueType::String;
  x.s = std::move(v);
  return x;
}
GgufValue GgufValue::array(GgufValueType elem, std::vector<GgufValue> items) {
  GgufValue x;
  x.type = GgufValueType::Array;
  x.elem = elem;
  x.items = std::move(items);
  return x;
}
GgufValue GgufValue::strings(const std::vector<std::string>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (const auto& s : v) items.push_back(str(s));
  return array(GgufValueType::String, std::move(items));
}
GgufValue GgufValue::f32s(const std::vector<float>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (float f : v) items.push_back(f32(f));
  return array(GgufValueType::F32, std::move(items));
}
GgufValue GgufValue::i32s(const std::vector<int32_t>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (int32_t i : v) items.push_back(i32(i));
  return array(GgufValueType::I32, std::move(items));
}

bool GgufValue::is_int() const {
  switch (type) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::U16:
    case GgufValueType::I16:
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::U64:
    case GgufValueType::I64:
      return true;
    default:
      return false;
  }
}

bool GgufValue::is_float() const {
  return type == GgufValueType::F32 || type == GgufValueType::F64;
}

bool GgufValue::get_int(int64_t* out) const {
  switch (type) {
    case GgufValueType::U8:
    case GgufValueType::U16:
    case GgufValueType::U32:
    case GgufValueType::U64:
      if (u > static_cast<uint64_t>(INT64_MAX)) return false;
      *out = static_cast<int64_t>(u);
      return true;
    case GgufValueType::I8:
    case GgufValueType::I16:
    case GgufValueType::I32:
    case GgufValueType::I64:
      *out = i;
      return true;
    default:
      return false;
  }
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

Shape GgufTensorInfo::shape() const {
  return Shape(ne.rbegin(), ne.rend());
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = key_index_.find(key);
  if (it != key_index_.end()) return &metadata[it->second].second;
  // Files built by hand (tests) may not have the index.
  for (const auto& [k, v] : metadata)
    if (k == key) return &v;
  return nullptr;
}

const GgufTensorInfo* GgufFile::tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  if (it != tensor_index_.end()) return &tensors[it->second];
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(path, "missing metadata key \"" + key + "\"");
  int64_t out;
  if (!v->get_int(&out))
    fail(path, key + ": expected an integer, got " + gguf_value_type_name(v->type));
  return out;
}

int64_t GgufFile::get_int(const std::string& key, int64_t def) const {
  return find(key) ? get_int(key) : def;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(path, "missing metadata key \"" + key + "\"");
  if (v->is_float()) return v->f;
  int64_t i;
  if (v->get_int(&i)) return static_cast<double>(i);
  fail(path, key + ": expected a number, got " + gguf_value_type_name(v->type));
}

double GgufFile::get_float(const std::string& key, double def) const {
  return find(key) ? get_float(key) : def;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(path, "missing metadata key \"" + key + "\"");
  if (v->type != GgufValueType::String)
    fail(path, key + ": expected a string, got " + gguf_value_type_name(v->type));
  return v->s;
}

std::string GgufFile::get_string(const std::string& key, const std::string& def) const {
  return find(key) ? get_string(key) : def;
}

bool GgufFile::get_bool(const std::string& key, bool def) const {
  const GgufValue* v = find(key);
  if (!v) return def;
  if (v->type != GgufValueType::Bool)
    fail(path, key + ": expected a bool, got " + gguf_value_type_name(v->type));
  return v->u != 0;
}

GgufFile read_gguf(const std::string& path) {
  GgufFile f;
  f.path = path;
  f.map = map_file(path);
  Cursor c{path, f.map->data, f.map->size};
  if (c.size < 4 || std::memcmp(c.p, "GGUF", 4) != 0) {
    std::string got;
    for (uint64_t k = 0; k < std::min<uint64_t>(4, c.size); ++k) {
      char ch = static_cast<char>(c.p[k]);
      got += (ch >= 32 && ch < 127) ? std::string(1, ch) : "\\x" + std::to_string(c.p[k]);
    }
    fail(path, "not a GGUF file (magic \"" + got + "\", expected \"GGUF\")");
  }
  c.pos = 4;
  f.version = c.get<uint32_t>("version");
  if (f.version == 1)
    fail(path, "GGUF version 1 is not supported (it used 32-bit counts; re-convert the model)");
  if (f.version >= 0x01000000)
    fail(path, "GGUF version " + std::to_string(f.version) +
                   " looks byte-swapped: big-endian GGUF files are not supported");
  if (f.version != 2 && f.version != 3)
    fail(path, "GGUF version " + std::to_string(f.version) + " is not supported (expected 3)");
  const uint64_t n_tensors = c.get<uint64_t>("tensor count");
  const uint64_t n_kv = c.get<uint64_t>("metadata count");
  // Each tensor info takes at least 24 bytes (empty name, 0 dims), each key/value 13: counts the
  // file cannot hold fail here, before anything is allocated for them.
  if (n_tensors > c.left() / 24)
    fail(path, "tensor count " + std::to_string(n_tensors) + " is impossible in a file of " +
                   std::to_string(c.size) + " bytes");
  if (n_kv > c.left() / 13)
    fail(path, "metadata key/value count " + std::to_string(n_kv) + " is impossible in a file of " +
                   std::to_string(c.size) + " bytes");
  if (n_tensors * 24 + n_kv * 13 > c.left())
    fail(path, "tensor count " + std::to_string(n_tensors) + " and metadata count " +
                   std::to_string(n_kv) + " do not fit in a file of " + std::to_string(c.size) +
                   " bytes");

  f.metadata.reserve(static_cast<size_t>(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.str("metadata key " + std::to_string(k));
    if (key.empty()) fail(path, "metadata key " + std::to_string(k) + " is empty");
    uint32_t t = c.get<uint32_t>("type of key \"" + key + "\"");
    if (!known_value_type(t))
      fail(path, "key \"" + key + "\": unknown value type " + std::to_string(t));
    GgufValue v = read_value(c, static_cast<GgufValueType>(t), key, 0);
    if (!f.key_index_.emplace(key, f.metadata.size()).second)
      fail(path, "duplicate metadata key \"" + key + "\"");
    f.metadata.emplace_back(std::move(key), std::move(v));
  }
  if (const GgufValue* a = f.find("general.alignment")) {
    if (a->type != GgufValueType::U32)
      fail(path,
           std::string("general.alignment: expected UINT32, got ") + gguf_value_type_name(a->type));
    if (a->u == 0 || (a->u & (a->u - 1)) != 0)
      fail(path, "general.alignment " + std::to_string(a->u) + " is not a power of two");
    f.alignment = a->u;
  } else {
    f.alignment = kDefaultAlignment;
  }

  f.tensors.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    t.name = c.str("tensor " + std::to_string(k) + " name");
    const std::string tn = "tensor \"" + t.name + "\"";
    if (t.name.empty()) fail(path, "tensor " + std::to_string(k) + " has an empty name");
    if (t.name.size() > kMaxTensorName)
      fail(path, tn + ": name is " + std::to_string(t.name.size()) + " bytes (at most " +
                     std::to_string(kMaxTensorName) + ")");
    const uint32_t n_dims = c.get<uint32_t>(tn + " dims count");
    if (n_dims < 1 || n_dims > 4)
      fail(path, tn + ": " + std::to_string(n_dims) + " dimensions (must be 1 to 4)");
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = c.get<uint64_t>(tn + " dims");
      if (dim == 0 || dim > static_cast<uint64_t>(INT64_MAX))
        fail(path, tn + ": dimension " + std::to_string(d) + " is " + std::to_string(dim));
      t.ne.push_back(static_cast<int64_t>(dim));
      if (__builtin_mul_overflow(numel, static_cast<int64_t>(dim), &numel))
        fail(path, tn + ": dims " + show_ne(t.ne) + "... overflow (element count too large)");
    }
    const uint32_t type = c.get<uint32_t>(tn + " type");
    const GgmlTypeInfo* ti = ggml_type_info(type);
    if (!ti) fail(path, tn + ": unknown ggml type " + std::to_string(type));
    t.type = static_cast<GgmlType>(type);
    if (t.ne[0] % ti->block != 0)
      fail(path, tn + ": ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of " + ti->name +
                     "'s block size " + std::to_string(ti->block));
    // numel / block * bytes cannot overflow: bytes per element <= 8 and numel < 2^63... check.
    if (__builtin_mul_overflow(static_cast<uint64_t>(numel / ti->block),
                               static_cast<uint64_t>(ti->bytes), &t.nbytes))
      fail(path, tn + ": dims " + show_ne(t.ne) + " overflow the byte size");
    t.offset = c.get<uint64_t>(tn + " offset");
    if (t.offset % f.alignment != 0)
      fail(path, tn + ": offset " + std::to_string(t.offset) +
                     " is not a multiple of the alignment " + std::to_string(f.alignment));
    if (!f.tensor_index_.emplace(t.name, f.tensors.size()).second)
      fail(path, "duplicate tensor name \"" + t.name + "\"");
    f.tensors.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t pad = (f.alignment - c.pos % f.alignment) % f.alignment;
  if (f.tensors.empty()) {
    f.data_offset = std::min<uint64_t>(c.pos + pad, c.size);
    return f;
  }
  if (pad > c.left())
    fail(path, "the data section (after " + std::to_string(pad) +
                   " padding bytes) starts past the end of the file");
  f.data_offset = c.pos + pad;
  const uint64_t data_size = c.size - f.data_offset;
  for (auto& t : f.tensors) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      fail(path, "tensor \"" + t.name + "\": data [" + std::to_string(t.offset) + ", +" +
                     std::to_string(t.nbytes) + ") runs past the end of the data section (" +
                     std::to_string(data_size) + " bytes)");
    t.data = f.map->data + f.data_offset + t.offset;
  }
  std::vector<const GgufTensorInfo*> order;
  for (const auto& t : f.tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < order.size(); ++k)
    if (order[k]->offset < order[k - 1]->offset + order[k - 1]->nbytes)
      fail(path, "tensors \"" + order[k - 1]->name + "\" and \"" + order[k]->name +
                     "\" overlap in the data section (offset " + std::to_string(order[k]->offset) +
                     ")");
  return f;
}

// One implementation of the block formats: autograd/kernels/quant.h (inline, so this file still
// links on its own in the sanitizer test).
void quantize_q8_0(const float* src, uint8_t* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) kernels::quantize_block_q8_0(src + b * 32, dst + b * 34);
}

void dequantize_q8_0(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) kernels::dequantize_block_q8_0(src + b * 34, dst + b * 32);
}

Tensor gguf_tensor(const GgufFile& file, const GgufTensorInfo& info) {
  const Shape shape = info.shape();
  std::shared_ptr<void> owner = file.map;
  auto share = [&](DType d, size_t elem) {
    uint8_t* p = const_cast<uint8_t*>(info.data);
    if (reinterpret_cast<uintptr_t>(p) % elem == 0) return Tensor::external(d, shape, p, owner);
    Tensor t = Tensor::empty(d, shape);
    std::memcpy(t.raw(), p, t.nbytes());
    return t;
  };
  switch (info.type) {
    case GgmlType::F32:
      return share(DType::F32, 4);
    case GgmlType::F16:
      return share(DType::F16, 2);
    case GgmlType::BF16:
      return share(DType::BF16, 2);
    case GgmlType::Q8_0: {
      Tensor t = Tensor::empty(DType::F32, shape);
      dequantize_q8_0(info.data, t.data<float>(), t.numel());
      return t;
    }
    case GgmlType::Q4_0: {  // hone's Q4_0 has GGUF's block layout
      Tensor t = Tensor::empty(DType::F32, shape);
      kernels::dequantize(info.data, DType::Q4_0, t.data<float>(), t.numel());
      return t;
    }
    default:
      fail(file.path, "tensor \"" + info.name + "\": type " + ggml_type_name(info.type) +
                          " is not supported yet (supported: F32, F16, BF16, Q8_0, Q4_0)");
  }
}

}  // namespace hone
