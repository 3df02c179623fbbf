#include "recipes/checkpoint.h"

#include <hdf5.h>

#include <cstring>
#include <filesystem>
#include <mutex>

#include "model/io/atomic_file.h"

namespace hone {

namespace {

// HDF5 prints its own error stack to stderr by default; we report errors ourselves.
void silence_hdf5() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
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

void check(herr_t rc, const std::string& where) {
  if (rc < 0) throw Error(where);
}

struct Visit {
  CheckpointData* out;
};

herr_t visit_object(hid_t obj, const char* name, const H5O_info_t* info, void* op_data) {
  auto* v = static_cast<Visit*>(op_data);
  if (info->type != H5O_TYPE_DATASET) return 0;
  Handle ds{H5Dopen2(obj, name, H5P_DEFAULT), H5Dclose};
  if (ds.id < 0) return -1;
  Handle space{H5Dget_space(ds.id), H5Sclose};
  Handle type{H5Dget_type(ds.id), H5Tclose};
  int nd = H5Sget_simple_extent_ndims(space.id);
  if (nd < 0) return -1;
  std::vector<hsize_t> dims(static_cast<size_t>(nd));
  H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  Shape shape(dims.begin(), dims.end());
  DType dt;
  H5T_class_t cls = H5Tget_class(type.id);
  size_t size = H5Tget_size(type.id);
  if (cls == H5T_STRING) {
    std::string value(size, '\0');
    if (H5Dread(ds.id, type.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, value.data()) < 0) return -1;
    value.resize(std::strlen(value.c_str()));
    std::string key = name;
    if (key.rfind("text/", 0) == 0) key = key.substr(5);
    v->out->strings[key] = value;
    return 0;
  }
  if (cls == H5T_FLOAT && size == 4)
    dt = DType::F32;
  else if (cls == H5T_FLOAT && size == 8)
    dt = DType::F64;
  else if (cls == H5T_INTEGER && size == 4)
    dt = DType::I32;
  else if (cls == H5T_INTEGER && size == 8)
    dt = DType::I64;
  else
    return -1;
  Tensor t = Tensor::empty(dt, shape);
  if (H5Dread(ds.id, hdf5_type(dt), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw()) < 0) return -1;
  v->out->tensors[name] = t;
  return 0;
}

}  // namespace

void write_checkpoint(const std::string& path, const CheckpointData& data) {
  silence_hdf5();
  const std::string tmp = path + ".tmp";
  try {
    Handle file{H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose};
    if (file.id < 0) throw Error(tmp + ": cannot create HDF5 file");
    Handle lcpl{H5Pcreate(H5P_LINK_CREATE), H5Pclose};
    check(H5Pset_create_intermediate_group(lcpl.id, 1), tmp + ": HDF5 property error");
    for (const auto& [name, t] : data.tensors) {
      std::vector<hsize_t> dims(t.shape().begin(), t.shape().end());
      Handle space{H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose};
      Handle ds{H5Dcreate2(file.id, name.c_str(), hdf5_type(t.dtype()), space.id, lcpl.id,
                           H5P_DEFAULT, H5P_DEFAULT),
                H5Dclose};
      if (ds.id < 0) throw Error(tmp + ": cannot create dataset " + name);
      if (t.numel() > 0)
        check(H5Dwrite(ds.id, hdf5_type(t.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw()),
              tmp + ": cannot write dataset " + name);
    }
    // Strings are scalar string datasets under "text/" (attributes are capped at 64 KiB).
    for (const auto& [name, value] : data.strings) {
      Handle type{H5Tcopy(H5T_C_S1), H5Tclose};
      check(H5Tset_size(type.id, value.size() + 1), tmp + ": HDF5 type error");
      Handle space{H5Screate(H5S_SCALAR), H5Sclose};
      const std::string key = "text/" + name;
      Handle ds{
          H5Dcreate2(file.id, key.c_str(), type.id, space.id, lcpl.id, H5P_DEFAULT, H5P_DEFAULT),
          H5Dclose};
      if (ds.id < 0) throw Error(tmp + ": cannot create string " + name);
      check(H5Dwrite(ds.id, type.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, value.c_str()),
            tmp + ": cannot write string " + name);
    }
    check(H5Fflush(file.id, H5F_SCOPE_GLOBAL), tmp + ": flush failed");
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
  Handle file{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  if (file.id < 0) throw Error(path + ": not a readable HDF5 checkpoint");
  CheckpointData out;
  Visit v{&out};
  if (H5Ovisit2(file.id, H5_INDEX_NAME, H5_ITER_INC, visit_object, &v, H5O_INFO_BASIC) < 0)
    throw Error(path + ": unreadable dataset in checkpoint");
  return out;
}

}  // namespace hone
