#include "recipes/checkpoint.h"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <sstream>
#include <string_view>

#include "model/io/atomic_file.h"
#include "model/io/mapped_file.h"
#include "recipes/checksum.h"

namespace hone {

namespace {

// The checksums live in HDF5's "user block", the first bytes of the file, which HDF5 reserves
// for the application and never reads: so they are checked before HDF5 parses a single byte (HDF5
// can crash on a corrupt file). Text, zero-padded to the block's size:
//   hone-checkpoint-checksums 1 <block size>
//   file <checksum of every byte after the block>
//   <checksum> <offset> <bytes> <kind> <shape> <name>     one line per dataset, over its bytes
//   end <checksum of the lines above>
constexpr const char* kMagic = "hone-checkpoint-checksums 1 ";

// HDF5 prints its own error stack to stderr by default; we report errors ourselves. And no
// clean-up at exit: after a failed write (a full disk, a file size limit) HDF5 1.10 keeps the
// file half-closed, and its exit handler then crashes closing it again.
void silence_hdf5() {
  static std::once_flag once;
  std::call_once(once, [] {
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  });
}

herr_t find_reason(unsigned n, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::string*>(data);
  const char* desc = err->desc ? err->desc : "";
  if (const char* e = std::strstr(desc, "errno = ")) {
    const int code = std::atoi(e + 8);
    if (code > 0) {
      *out = std::strerror(code);
      return 1;  // stop: the OS's reason is the one a user can act on
    }
  }
  if (n == 0) *out = desc;
  return 0;
}

// Why the HDF5 call that just failed failed: the OS's reason when one of HDF5's file drivers
// recorded an errno (it does for open, write, truncate, ...), else HDF5's innermost message.
std::string hdf5_reason(int saved_errno) {
  std::string r;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, find_reason, &r);
  if (r.empty() && saved_errno != 0) r = std::strerror(saved_errno);
  return r.empty() ? "unknown HDF5 error" : r;
}

hid_t hdf5_type(DType t) {
  switch (t) {
    case DType::F32:
      return H5T_NATIVE_FLOAT;
    case DType::F64:
      return H5T_NATIVE_DOUBLE;
    case DType::I32:
      return H5T_NATIVE_INT32;
    case DType::I64:
      return H5T_NATIVE_INT64;
    default:
      throw Error(std::string("checkpoint: cannot store dtype ") + dtype_name(t));
  }
}

// Closes an HDF5 handle at scope exit.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  ~Handle() {
    if (id >= 0) close(id);
  }
};

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

std::string shape_text(const Shape& shape) {
  if (shape.empty()) return "-";
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += 'x';
    s += std::to_string(shape[i]);
  }
  return s;
}

// One dataset's entry: where its bytes are in the file and their checksum, seeded with its name,
// kind and shape so a renamed or reshaped dataset fails too.
struct Entry {
  std::string name, kind, shape;
  uint64_t offset = 0, bytes = 0, sum = 0;
};

uint64_t entry_sum(const Entry& e, const void* bytes) {
  return checksum64(bytes, e.bytes, checksum64(e.name + "\n" + e.kind + "\n" + e.shape));
}

std::string entry_line(const Entry& e) {
  return hex64(e.sum) + " " + std::to_string(e.offset) + " " + std::to_string(e.bytes) + " " +
         e.kind + " " + e.shape + " " + e.name + "\n";
}

struct Visit {
  CheckpointData* out;
  const std::map<std::string, Entry>* table;
  std::set<std::string> seen;
  std::string error;  // set when the visit stops
};

// Reads one dataset into `v`, checking it against its table entry. Never throws: HDF5 calls this
// from C.
herr_t visit_dataset(hid_t obj, const char* name, Visit* v) {
  auto entry = v->table->find(name);
  if (entry == v->table->end()) return v->error = "is not in the checksum table", -1;
  const Entry& e = entry->second;
  Handle ds{H5Dopen2(obj, name, H5P_DEFAULT), H5Dclose};
  if (ds.id < 0) return v->error = "cannot open", -1;
  Handle space{H5Dget_space(ds.id), H5Sclose};
  Handle type{H5Dget_type(ds.id), H5Tclose};
  const int nd = space.id < 0 ? -1 : H5Sget_simple_extent_ndims(space.id);
  if (nd < 0 || type.id < 0) return v->error = "unreadable shape or type", -1;
  std::vector<hsize_t> dims(static_cast<size_t>(nd));
  H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  Shape shape(dims.begin(), dims.end());
  const H5T_class_t cls = H5Tget_class(type.id);
  const size_t size = H5Tget_size(type.id);
  uint64_t bytes = size;
  for (hsize_t d : dims) bytes *= d;
  std::string kind = "string";
  DType dt = DType::F32;
  if (cls == H5T_FLOAT && size == 4)
    kind = dtype_name(dt = DType::F32);
  else if (cls == H5T_FLOAT && size == 8)
    kind = dtype_name(dt = DType::F64);
  else if (cls == H5T_INTEGER && size == 4)
    kind = dtype_name(dt = DType::I32);
  else if (cls == H5T_INTEGER && size == 8)
    kind = dtype_name(dt = DType::I64);
  else if (cls != H5T_STRING)
    return v->error = "is of an unsupported type", -1;
  if (kind != e.kind || shape_text(shape) != e.shape || bytes != e.bytes)
    return v->error = "differs in type or shape from its checksum table entry", -1;
  v->seen.insert(name);

  const std::string key = name;
  if (cls == H5T_STRING) {
    if (nd != 0) return v->error = "is a string that is not a scalar", -1;
    std::string value(size, '\0');
    if (H5Dread(ds.id, type.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, value.data()) < 0)
      return v->error = "cannot be read: " + hdf5_reason(errno), -1;
    if (entry_sum(e, value.data()) != e.sum) return v->error = "does not match its checksum", -1;
    value.resize(std::strlen(value.c_str()));
    v->out->strings[key.rfind("text/", 0) == 0 ? key.substr(5) : key] = value;
    return 0;
  }
  Tensor t = Tensor::empty(dt, shape);
  if (t.numel() > 0 && H5Dread(ds.id, hdf5_type(dt), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw()) < 0)
    return v->error = "cannot be read: " + hdf5_reason(errno), -1;
  if (entry_sum(e, t.raw()) != e.sum) return v->error = "does not match its checksum", -1;
  v->out->tensors[key] = t;
  return 0;
}

herr_t visit_object(hid_t obj, const char* name, const H5O_info_t* info, void* op_data) {
  auto* v = static_cast<Visit*>(op_data);
  if (info->type != H5O_TYPE_DATASET) return 0;
  herr_t rc = -1;
  try {
    rc = visit_dataset(obj, name, v);
  } catch (const std::exception& e) {
    v->error = e.what();
  }
  if (rc < 0) v->error = std::string("dataset \"") + name + "\" " + v->error;
  return rc;
}

bool parse_u64(const std::string& s, int base, uint64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  *out = std::strtoull(s.c_str(), &end, base);
  return errno == 0 && end == s.c_str() + s.size() &&
         std::isalnum(static_cast<unsigned char>(s[0]));
}

// Checks the user block's table and every byte of the file against it, before HDF5 reads any.
// Returns the table, by HDF5 dataset name.
std::map<std::string, Entry> verify_file(const std::string& path, const MappedFile& f) {
  const std::string corrupt = ": the checkpoint is corrupt; not using it";
  const char* data = reinterpret_cast<const char*>(f.data);
  const std::string magic = kMagic;
  if (f.size < 8 || std::memcmp(data, "\x89HDF\r\n\x1a\n", 8) == 0)
    throw Error(path +
                ": has no checksums (written by an hone older than checksummed checkpoints), so "
                "its contents cannot be verified and hone does not resume from it; start a new "
                "run in a new output.dir");
  if (f.size < 512 || std::memcmp(data, magic.data(), magic.size()) != 0)
    throw Error(path + ": not a hone checkpoint (no checksum header)" + corrupt);
  const size_t nl = std::string_view(data, 512).find('\n');
  uint64_t block = 0;
  if (nl == std::string_view::npos ||
      !parse_u64(std::string(data + magic.size(), nl - magic.size()), 10, &block) || block < 512 ||
      (block & (block - 1)) != 0 || block > f.size)
    throw Error(path + ": malformed checksum header" + corrupt);
  const std::string_view ub(data, block);
  const size_t text_end = std::min(ub.find('\0'), ub.size());
  const std::string text(ub.substr(0, text_end));
  if (ub.substr(text_end).find_first_not_of('\0') != std::string_view::npos)
    throw Error(path + ": stray bytes after the checksum header" + corrupt);
  const size_t end = text.rfind("end ");
  if (end == std::string::npos ||
      text.substr(end) != "end " + hex64(checksum64(text.substr(0, end))) + "\n")
    throw Error(path + ": the checksum header does not match its own checksum" + corrupt);

  std::istringstream lines(text.substr(0, end));
  std::string line;
  std::getline(lines, line);  // magic
  std::getline(lines, line);  // file <sum>
  uint64_t file_sum = 0;
  if (line.rfind("file ", 0) != 0 || !parse_u64(line.substr(5), 16, &file_sum))
    throw Error(path + ": malformed checksum header" + corrupt);
  std::map<std::string, Entry> table;
  while (std::getline(lines, line)) {
    std::istringstream in(line);
    std::string sum, off, n;
    Entry e;
    in >> sum >> off >> n >> e.kind >> e.shape;
    std::getline(in, e.name);
    if (!e.name.empty() && e.name[0] == ' ') e.name.erase(0, 1);
    if (!parse_u64(sum, 16, &e.sum) || !parse_u64(off, 10, &e.offset) ||
        !parse_u64(n, 10, &e.bytes) || e.name.empty() ||
        (e.bytes > 0 && (e.offset < block || e.offset > f.size || e.bytes > f.size - e.offset)))
      throw Error(path + ": malformed checksum table line \"" + line + "\"" + corrupt);
    if (entry_sum(e, f.data + e.offset) != e.sum)
      throw Error(path + ": dataset \"" + e.name + "\" does not match its checksum" + corrupt);
    table[e.name] = e;
  }
  if (checksum64(f.data + block, f.size - block) != file_sum)
    throw Error(path +
                ": HDF5's own structures (outside the datasets' values) do not match their "
                "checksum" +
                corrupt);
  return table;
}

// Writes one dataset; returns its table entry (offset filled in by the caller's file map).
Entry write_dataset(hid_t file, hid_t lcpl, const std::string& tmp, const std::string& name,
                    hid_t type, const Shape& shape, const void* bytes, size_t n,
                    const std::string& kind) {
  const bool scalar = kind == "string";
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space{scalar ? H5Screate(H5S_SCALAR)
                      : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               H5Sclose};
  Handle ds{H5Dcreate2(file, name.c_str(), type, space.id, lcpl, H5P_DEFAULT, H5P_DEFAULT),
            H5Dclose};
  if (ds.id < 0) throw Error(tmp + ": cannot create dataset " + name + ": " + hdf5_reason(errno));
  Entry e{name, kind, shape_text(shape), 0, n, 0};
  if (n > 0) {
    errno = 0;
    if (H5Dwrite(ds.id, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes) < 0)
      throw Error(tmp + ": cannot write dataset " + name + ": " + hdf5_reason(errno));
    const haddr_t at = H5Dget_offset(ds.id);  // contiguous storage: absolute file offset
    if (at == HADDR_UNDEF) throw Error(tmp + ": dataset " + name + ": no contiguous storage");
    e.offset = at;
  }
  e.sum = entry_sum(e, bytes);
  return e;
}

// Fills the user block of the closed file `tmp`: the table checked against the bytes on disk
// (so a file that would not verify is never committed) and the whole file's checksum.
void write_checksums(const std::string& tmp, uint64_t block, const std::vector<Entry>& entries) {
  auto f = map_file(tmp);
  std::string text = kMagic + std::to_string(block) + "\n";
  text += "file " + hex64(checksum64(f->data + block, f->size - block)) + "\n";
  for (const Entry& e : entries) {
    if (e.bytes > 0 && (e.offset < block || e.offset + e.bytes > f->size ||
                        entry_sum(e, f->data + e.offset) != e.sum))
      throw Error(tmp + ": dataset " + e.name + " did not reach the file intact");
    text += entry_line(e);
  }
  text += "end " + hex64(checksum64(text)) + "\n";
  if (text.size() > block) throw Error(tmp + ": checksum header larger than its block");
  text.resize(block, '\0');
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw Error(tmp + ": cannot reopen: " + std::strerror(errno));
  const ssize_t w = ::pwrite(fd, text.data(), text.size(), 0);
  const int e = errno;
  ::close(fd);
  if (w != static_cast<ssize_t>(text.size()))
    throw Error(tmp + ": cannot write: " + std::strerror(w < 0 ? e : ENOSPC));
}

}  // namespace

void write_checkpoint(const std::string& path, const CheckpointData& data) {
  silence_hdf5();
  const std::string tmp = path + ".tmp";
  // The user block holds the table: sized from the longest each line can be.
  uint64_t need = 256;
  for (const auto& [name, t] : data.tensors) need += name.size() + 100 + 21 * t.shape().size();
  for (const auto& [name, v] : data.strings) need += name.size() + 110;
  uint64_t block = 512;
  while (block < need) block *= 2;
  try {
    Handle fapl{H5Pcreate(H5P_FILE_ACCESS), H5Pclose};
    Handle fcpl{H5Pcreate(H5P_FILE_CREATE), H5Pclose};
    // The newest file format checksums HDF5's own metadata as well (superblock, object headers,
    // B-trees); the user block keeps the table out of HDF5's reach.
    if (H5Pset_libver_bounds(fapl.id, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0 ||
        H5Pset_userblock(fcpl.id, block) < 0)
      throw Error(tmp + ": HDF5 property error");
    errno = 0;
    Handle file{H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, fcpl.id, fapl.id), H5Fclose};
    if (file.id < 0) throw Error(tmp + ": cannot create HDF5 file: " + hdf5_reason(errno));
    Handle lcpl{H5Pcreate(H5P_LINK_CREATE), H5Pclose};
    if (H5Pset_create_intermediate_group(lcpl.id, 1) < 0)
      throw Error(tmp + ": HDF5 property error");
    std::vector<Entry> entries;
    for (const auto& [name, t] : data.tensors)
      entries.push_back(write_dataset(file.id, lcpl.id, tmp, name, hdf5_type(t.dtype()), t.shape(),
                                      t.raw(), t.nbytes(), dtype_name(t.dtype())));
    // Strings are scalar string datasets under "text/" (attributes are capped at 64 KiB).
    for (const auto& [name, value] : data.strings) {
      Handle type{H5Tcopy(H5T_C_S1), H5Tclose};
      if (H5Tset_size(type.id, value.size() + 1) < 0) throw Error(tmp + ": HDF5 type error");
      entries.push_back(write_dataset(file.id, lcpl.id, tmp, "text/" + name, type.id, {},
                                      value.c_str(), value.size() + 1, "string"));
    }
    errno = 0;
    if (H5Fflush(file.id, H5F_SCOPE_GLOBAL) < 0)
      throw Error(tmp + ": cannot write: " + hdf5_reason(errno));
    // Closing writes what HDF5 still caches: its failure is a failed write too.
    errno = 0;
    const hid_t id = file.id;
    file.id = -1;
    if (H5Fclose(id) < 0) throw Error(tmp + ": cannot write: " + hdf5_reason(errno));
    write_checksums(tmp, block, entries);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
  commit_file(tmp, path);
}

CheckpointData read_checkpoint(const std::string& path) {
  silence_hdf5();
  if (!std::filesystem::exists(path)) throw Error(path + ": no such checkpoint file");
  std::map<std::string, Entry> table;
  {
    auto f = map_file(path);
    table = verify_file(path, *f);
  }
  errno = 0;
  Handle file{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  if (file.id < 0) throw Error(path + ": not a readable HDF5 checkpoint: " + hdf5_reason(errno));
  CheckpointData out;
  Visit v{&out, &table, {}, {}};
  if (H5Ovisit2(file.id, H5_INDEX_NAME, H5_ITER_INC, visit_object, &v, H5O_INFO_BASIC) < 0)
    throw Error(path + ": " + (v.error.empty() ? "unreadable checkpoint structure" : v.error) +
                "; the checkpoint is corrupt, not using it");
  for (const auto& [name, e] : table)
    if (!v.seen.count(name))
      throw Error(path + ": dataset \"" + name +
                  "\" is missing; the checkpoint is corrupt, not using it");
  return out;
}

}  // namespace hone
