// libFuzzer target: an HDF5 training checkpoint through read_checkpoint.
#include "fuzz_common.h"
#include "recipes/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = hone::fuzz::scratch_subdir("checkpoint");
  const std::string path =
      hone::fuzz::write_file(dir, "step-00000001.h5", hone::fuzz::as_view(data, size));
  try {
    const hone::CheckpointData c = hone::read_checkpoint(path);
    hone::fuzz::read_every_byte(c.tensors);
  } catch (const hone::Error& e) {
    hone::fuzz::expected(e);
  }
  return 0;
}
