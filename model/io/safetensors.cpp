#include "model/io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "autograd/json_parse.h"
#include "model/io/atomic_file.h"
#include "model/io/mapped_file.h"

namespace hone {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes little-endian");

namespace {

using json = nlohmann::json;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(path + ": " + what);
}

std::string qstr(const std::string& s) {
  return json(s).dump();
}

// A short, one-line rendering of a JSON value for error messages.
std::string show(const json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// Returns the byte offset of the first invalid UTF-8 sequence, or -1.
int64_t invalid_utf8_at(const uint8_t* p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = p[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return static_cast<int64_t>(i);
    }
    if (i + len > n) return static_cast<int64_t>(i);
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return static_cast<int64_t>(i);
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are invalid.
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return static_cast<int64_t>(i);
    i += len;
  }
  return -1;
}

// Maps a spec dtype name to ours; spec dtypes we do not handle get a clear "not supported".
DType parse_dtype(const std::string& path, const std::string& name, const json& v) {
  if (!v.is_string())
    fail(path, "tensor " + qstr(name) + ": dtype: expected a string, got " + show(v));
  const std::string s = v.get<std::string>();
  static const std::set<std::string> known_unsupported = {
      "BOOL",    "U8",      "I8",      "U16", "I16",     "U32",     "U64",
      "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4",  "F6_E2M3", "F6_E3M2", "C64"};
  if (s == "F32") return DType::F32;
  if (s == "F64") return DType::F64;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  if (s == "I32") return DType::I32;
  if (s == "I64") return DType::I64;
  if (known_unsupported.count(s))
    fail(path, "tensor " + qstr(name) + ": dtype " + s +
                   " is not supported (supported: F32, F64, F16, BF16, I32, I64)");
  fail(path, "tensor " + qstr(name) + ": unknown dtype " + qstr(s));
}

// A non-negative integer that fits int64, or an error naming the tensor and field.
int64_t parse_count(const std::string& path, const std::string& name, const std::string& field,
                    const json& v) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX))
      fail(path,
           "tensor " + qstr(name) + ": " + field + ": " + std::to_string(u) + " is too large");
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i < 0)
      fail(path, "tensor " + qstr(name) + ": " + field + ": " + std::to_string(i) + " is negative");
    return i;
  }
  fail(path,
       "tensor " + qstr(name) + ": " + field + ": expected a non-negative integer, got " + show(v));
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

// Parses the header JSON, rejecting duplicate keys in any object (nlohmann keeps the last one
// silently, so the parser callback tracks the keys of each open object).
json parse_header(const std::string& path, const uint8_t* p, size_t n) {
  if (n == 0) fail(path, "header is empty, expected a JSON object");
  if (p[0] != '{')
    fail(path, "header does not start with '{' (not a safetensors file, or a corrupt header)");
  if (int64_t at = invalid_utf8_at(p, n); at >= 0)
    fail(path, "header is not valid UTF-8 (byte " + std::to_string(at) + ")");
  std::vector<std::set<std::string>> open;
  std::string dup;
  auto cb = [&](int /*depth*/, json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start:
        open.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open.empty()) open.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open.empty() && !open.back().insert(parsed.get<std::string>()).second && dup.empty())
          dup = parsed.get<std::string>();
        break;
      default:
        break;
    }
    return true;
  };
  json h = parse_json<json>(std::string_view(reinterpret_cast<const char*>(p), n),
                            path + ": header", cb);
  if (!dup.empty()) fail(path, "header has duplicate key " + qstr(dup));
  if (!h.is_object()) fail(path, "header is not a JSON object");
  return h;
}

}  // namespace

SafetensorsFile read_safetensors(const std::string& path, const TensorFilter& keep) {
  auto file = map_file(path);
  const size_t size = file->size;
  if (size < 8)
    fail(path, "file is " + std::to_string(size) +
                   " bytes, too short for a safetensors file (at least 8 bytes)");
  uint64_t n;
  std::memcpy(&n, file->data, 8);
  if (n > size - 8)
    fail(path, "header length " + std::to_string(n) + " exceeds the file size " +
                   std::to_string(size) + " (truncated file, or not a safetensors file)");
  if (n > kSafetensorsMaxHeader)
    fail(path, "header length " + std::to_string(n) + " exceeds the limit of " +
                   std::to_string(kSafetensorsMaxHeader) + " bytes");
  json h = parse_header(path, file->data + 8, static_cast<size_t>(n));

  const uint64_t buffer_size = size - 8 - n;
  SafetensorsFile out;
  out.files = {path};
  std::vector<Entry> entries;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, "__metadata__: expected an object, got " + show(v));
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail(path,
               "__metadata__: " + qstr(m.key()) + ": expected a string, got " + show(m.value()));
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) fail(path, "tensor " + qstr(name) + ": expected an object, got " + show(v));
    for (const char* f : {"dtype", "shape", "data_offsets"})
      if (!v.contains(f)) fail(path, "tensor " + qstr(name) + ": missing field \"" + f + "\"");
    for (auto f = v.begin(); f != v.end(); ++f)
      if (f.key() != "dtype" && f.key() != "shape" && f.key() != "data_offsets")
        fail(path, "tensor " + qstr(name) + ": unexpected field " + qstr(f.key()));
    Entry e;
    e.name = name;
    e.dtype = parse_dtype(path, name, v["dtype"]);
    const json& shape = v["shape"];
    if (!shape.is_array())
      fail(path, "tensor " + qstr(name) + ": shape: expected an array, got " + show(shape));
    int64_t numel = 1;
    for (const json& d : shape) {
      int64_t dim = parse_count(path, name, "shape", d);
      e.shape.push_back(dim);
      if (__builtin_mul_overflow(numel, dim, &numel))
        fail(path, "tensor " + qstr(name) + ": shape " + shape_str(e.shape) + " is too large");
    }
    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2)
      fail(path,
           "tensor " + qstr(name) + ": data_offsets: expected [begin, end], got " + show(off));
    e.begin = static_cast<uint64_t>(parse_count(path, name, "data_offsets", off[0]));
    e.end = static_cast<uint64_t>(parse_count(path, name, "data_offsets", off[1]));
    const std::string range = "[" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
    if (e.end < e.begin)
      fail(path, "tensor " + qstr(name) + ": data_offsets " + range + ": end is before begin");
    if (e.end > buffer_size)
      fail(path, "tensor " + qstr(name) + ": data_offsets " + range +
                     " out of range of the data buffer (" + std::to_string(buffer_size) +
                     " bytes)");
    uint64_t want = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(numel), dtype_size(e.dtype), &want) ||
        want != e.end - e.begin)
      fail(path, "tensor " + qstr(name) + ": data_offsets " + range + " span " +
                     std::to_string(e.end - e.begin) + " bytes but shape " + shape_str(e.shape) +
                     " of " + dtype_name(e.dtype) + " needs " + std::to_string(want) + " bytes");
    entries.push_back(std::move(e));
  }

  // The spec requires the buffer to be fully indexed: sorted by offset, each tensor starts where
  // the previous one ended, the first at 0 and the last ending at the end of the file.
  std::vector<const Entry*> order;
  for (const Entry& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : order) {
    if (e->begin < pos)
      fail(path, "tensors " + qstr(prev->name) + " and " + qstr(e->name) +
                     " overlap in the data buffer (bytes " + std::to_string(e->begin) + " to " +
                     std::to_string(pos) + ")");
    if (e->begin > pos)
      fail(path, "bytes " + std::to_string(pos) + " to " + std::to_string(e->begin) +
                     " of the data buffer are not covered by any tensor (hole before " +
                     qstr(e->name) + ")");
    pos = e->end;
    prev = e;
  }
  if (pos != buffer_size)
    fail(path, "data buffer is " + std::to_string(buffer_size) + " bytes but the tensors cover " +
                   std::to_string(pos) + " (trailing bytes, or a hole at the end)");

  std::shared_ptr<void> owner = file;
  for (const Entry& e : entries) {
    if (keep && !keep(e.name)) continue;
    uint8_t* p = file->data + 8 + n + e.begin;
    if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) == 0) {
      out.tensors[e.name] = Tensor::external(e.dtype, e.shape, p, owner);
    } else {  // misaligned data would be undefined behaviour to read in place
      Tensor t = Tensor::empty(e.dtype, e.shape);
      if (t.nbytes()) std::memcpy(t.raw(), p, t.nbytes());
      out.tensors[e.name] = std::move(t);
    }
  }
  return out;
}

SafetensorsFile read_safetensors_index(const std::string& index_path, const TensorFilter& keep) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(index_path, ec)) fail(index_path, "no such file or directory");
  json idx;
  {
    auto file = map_file(index_path);
    const uint8_t* p = file->data;
    idx = parse_json<json>(std::string_view(reinterpret_cast<const char*>(p), file->size),
                           index_path);
  }
  if (!idx.is_object() || !idx.contains("weight_map"))
    fail(index_path, "missing field \"weight_map\"");
  const json& wm = idx["weight_map"];
  if (!wm.is_object()) fail(index_path, "weight_map: expected an object, got " + show(wm));
  if (wm.empty()) fail(index_path, "weight_map: is empty");
  const fs::path dir = fs::path(index_path).parent_path();
  std::map<std::string, SafetensorsFile> shards;
  SafetensorsFile out;
  for (auto it = wm.begin(); it != wm.end(); ++it) {
    if (!it.value().is_string())
      fail(index_path,
           "weight_map: " + qstr(it.key()) + ": expected a file name, got " + show(it.value()));
    const std::string shard = it.value().get<std::string>();
    fs::path rel(shard);
    bool escapes = rel.is_absolute() || rel.empty();
    for (const auto& part : rel)
      if (part == "..") escapes = true;
    if (escapes)
      fail(index_path, "weight_map: " + qstr(it.key()) + ": shard " + qstr(shard) +
                           " must be a file name inside the index's folder");
    if (keep && !keep(it.key())) continue;
    auto s = shards.find(shard);
    if (s == shards.end()) {
      const std::string shard_path = (dir / rel).string();
      if (!fs::exists(shard_path, ec))
        fail(index_path, "weight_map: " + qstr(it.key()) + ": shard " + shard_path +
                             ": no such file or directory");
      s = shards.emplace(shard, read_safetensors(shard_path, keep)).first;
      out.files.push_back(shard_path);
      for (const auto& [k, v] : s->second.metadata) out.metadata[k] = v;
    }
    auto t = s->second.tensors.find(it.key());
    if (t == s->second.tensors.end())
      fail(index_path, "tensor " + qstr(it.key()) + " is mapped to " + qstr(shard) +
                           " but that shard does not contain it");
    out.tensors[it.key()] = t->second;
  }
  return out;
}

namespace {}  // namespace

void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Header: "__metadata__" first, then tensors in key order, data packed in the same order.
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    json m = json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header += "\"__metadata__\":" + m.dump();
    first = false;
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__")
      fail(path, "cannot write a tensor named " + qstr(name));
    if (!t.defined()) fail(path, "tensor " + qstr(name) + " is undefined");
    json shape = json::array();
    for (int64_t d : t.shape()) shape.push_back(d);
    const uint64_t end = offset + t.nbytes();
    header += std::string(first ? "" : ",") + qstr(name) + ":{\"dtype\":\"" +
              dtype_name(t.dtype()) + "\",\"shape\":" + shape.dump() + ",\"data_offsets\":[" +
              std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
    first = false;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  const uint64_t n = header.size();

  write_file_atomically(path, [&](AtomicWriter& w) {
    w.write(&n, 8);
    w.write(header);
    for (const auto& [name, t] : tensors) w.write(t.raw(), t.nbytes());
  });
}

}  // namespace hone
