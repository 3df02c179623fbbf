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
    // Read every byte each tensor claims, so a view past its buffer shows up.
    unsigned sum = 0;
    for (const auto& [name, t] : f.tensors) {
      const auto* p = static_cast<const unsigned char*>(t.raw());
      for (size_t i = 0; i < t.nbytes(); ++i) sum += p[i];
    }
    volatile unsigned sink = sum;
    (void)sink;
  } catch (const hone::Error& e) {
    hone::fuzz::expected(e);
  }
  return 0;
}
