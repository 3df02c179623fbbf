// libFuzzer target: a .safetensors file (u64 header length, JSON header, data) through
// read_safetensors, the reader every model, adapter and fixture load goes through.
#include "fuzz_common.h"
#include "model/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = hone::fuzz::scratch_subdir("safetensors");
  const std::string path =
      hone::fuzz::write_file(dir, "model.safetensors", hone::fuzz::as_view(data, size));
  try {
    const hone::SafetensorsFile f = hone::read_safetensors(path);
    hone::fuzz::read_every_byte(f.tensors);
  } catch (const hone::Error& e) {
    hone::fuzz::expected(e);
  }
  return 0;
}
