// The GGUF writer (gguf.h's write_gguf): checks keys, arrays, tensor names, dims and types before
// a byte is written, then lays out v3 with alignment 32 through write_file_atomically.
#include <set>

#include "autograd/kernels/quant.h"
#include "model/io/atomic_file.h"
#include "model/io/gguf.h"
#include "model/io/gguf_internal.h"

namespace hone {

using namespace gguf_detail;

namespace {

void check_value(const std::string& path, const std::string& key, const GgufValue& v, int depth) {
  if (v.type != GgufValueType::Array) return;
  if (depth >= kMaxArrayDepth) fail(path, "key \"" + key + "\": arrays nested too deeply");
  for (const GgufValue& it : v.items) {
    if (it.type != v.elem)
      fail(path, "key \"" + key + "\": array of " + gguf_value_type_name(v.elem) + " holds a " +
                     gguf_value_type_name(it.type));
    check_value(path, key, it, depth + 1);
  }
}

void put_value(std::string& out, const GgufValue& v) {
  auto put = [&](const auto& x) { out.append(reinterpret_cast<const char*>(&x), sizeof x); };
  switch (v.type) {
    case GgufValueType::U8:
      put(static_cast<uint8_t>(v.u));
      break;
    case GgufValueType::I8:
      put(static_cast<int8_t>(v.i));
      break;
    case GgufValueType::U16:
      put(static_cast<uint16_t>(v.u));
      break;
    case GgufValueType::I16:
      put(static_cast<int16_t>(v.i));
      break;
    case GgufValueType::U32:
      put(static_cast<uint32_t>(v.u));
      break;
    case GgufValueType::I32:
      put(static_cast<int32_t>(v.i));
      break;
    case GgufValueType::U64:
      put(static_cast<uint64_t>(v.u));
      break;
    case GgufValueType::I64:
      put(static_cast<int64_t>(v.i));
      break;
    case GgufValueType::F32:
      put(static_cast<float>(v.f));
      break;
    case GgufValueType::F64:
      put(static_cast<double>(v.f));
      break;
    case GgufValueType::Bool:
      put(static_cast<uint8_t>(v.u ? 1 : 0));
      break;
    case GgufValueType::String:
      put(static_cast<uint64_t>(v.s.size()));
      out += v.s;
      break;
    case GgufValueType::Array:
      put(static_cast<uint32_t>(v.elem));
      put(static_cast<uint64_t>(v.items.size()));
      for (const GgufValue& it : v.items) put_value(out, it);
      break;
  }
}

void put_string(std::string& out, const std::string& s) {
  const uint64_t n = s.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += s;
}

}  // namespace

void write_gguf(const std::string& path, const GgufMetadata& metadata,
                const std::vector<GgufTensorOut>& tensors) {
  const uint64_t align = kDefaultAlignment;
  std::string head = "GGUF";
  auto put = [&](const auto& x) { head.append(reinterpret_cast<const char*>(&x), sizeof x); };
  put(static_cast<uint32_t>(3));
  put(static_cast<uint64_t>(tensors.size()));
  put(static_cast<uint64_t>(metadata.size()));
  std::set<std::string> keys;
  for (const auto& [key, v] : metadata) {
    if (key.empty()) fail(path, "cannot write an empty metadata key");
    if (!keys.insert(key).second) fail(path, "duplicate metadata key \"" + key + "\"");
    if (key == "general.alignment" && !(v.type == GgufValueType::U32 && v.u == align))
      fail(path, "general.alignment: this writer always aligns to 32");
    check_value(path, key, v, 0);
    put_string(head, key);
    put(static_cast<uint32_t>(v.type));
    put_value(head, v);
  }
  std::set<std::string> names;
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const GgufTensorOut& t : tensors) {
    const std::string tn = "tensor \"" + t.name + "\"";
    if (t.name.empty() || t.name.size() > kMaxTensorName)
      fail(path, tn + ": name must be 1 to " + std::to_string(kMaxTensorName) + " bytes");
    if (!names.insert(t.name).second) fail(path, "duplicate tensor name \"" + t.name + "\"");
    if (!t.values.defined() || t.values.ndim() < 1 || t.values.ndim() > 4 || t.values.numel() == 0)
      fail(path, tn + ": must have 1 to 4 non-empty dimensions");
    if (t.type != GgmlType::F32 && t.type != GgmlType::F16 && t.type != GgmlType::BF16 &&
        t.type != GgmlType::Q8_0 && t.type != GgmlType::Q4_0)
      fail(path, tn + ": cannot write type " + ggml_type_name(t.type) +
                     " (supported: F32, F16, BF16, Q8_0, Q4_0)");
    const GgmlTypeInfo* ti = ggml_type_info(static_cast<uint32_t>(t.type));
    const int64_t ne0 = t.values.dim(-1);
    if (ne0 % ti->block != 0)
      fail(path, tn + ": last dimension " + std::to_string(ne0) + " is not a multiple of " +
                     ti->name + "'s block size " + std::to_string(ti->block));
    const uint64_t nbytes = static_cast<uint64_t>(t.values.numel() / ti->block * ti->bytes);
    put_string(head, t.name);
    put(static_cast<uint32_t>(t.values.ndim()));
    for (int d = t.values.ndim() - 1; d >= 0; --d) put(static_cast<uint64_t>(t.values.dim(d)));
    put(static_cast<uint32_t>(t.type));
    put(offset);
    sizes.push_back(nbytes);
    offset += (nbytes + align - 1) / align * align;
  }
  head.append((align - head.size() % align) % align, '\0');

  write_file_atomically(path, [&](AtomicWriter& w) {
    w.write(head);
    static const char zeros[32] = {};
    for (size_t k = 0; k < tensors.size(); ++k) {
      const Tensor& v = tensors[k].values;
      const GgmlType type = tensors[k].type;
      const DType want = type == GgmlType::F16    ? DType::F16
                         : type == GgmlType::BF16 ? DType::BF16
                                                  : DType::F32;
      if (type != GgmlType::Q8_0 && type != GgmlType::Q4_0 && v.dtype() == want) {
        w.write(v.raw(), v.nbytes());
      } else {
        const Tensor f = v.dtype() == DType::F32 ? v : v.to(DType::F32);
        if (type == GgmlType::Q8_0 || type == GgmlType::Q4_0) {
          std::vector<uint8_t> q(sizes[k]);
          kernels::quantize(f.data<float>(), q.data(),
                            type == GgmlType::Q8_0 ? DType::Q8_0 : DType::Q4_0, f.numel());
          w.write(q.data(), q.size());
        } else {
          const Tensor c = f.to(want);
          w.write(c.raw(), c.nbytes());
        }
      }
      w.write(zeros, (align - sizes[k] % align) % align);
    }
  });
}

}  // namespace hone
