// libFuzzer target: a Hugging Face config.json through config_from_hf_json (which validates it).
#include "fuzz_common.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = hone::fuzz::scratch_subdir("config");
  const std::string path =
      hone::fuzz::write_file(dir, "config.json", hone::fuzz::as_view(data, size));
  try {
    const hone::ModelConfig c = hone::config_from_hf_json(path);
    volatile int64_t sink = c.num_parameters();
    (void)sink;
  } catch (const hone::Error& e) {
    hone::fuzz::expected(e);
  }
  return 0;
}
