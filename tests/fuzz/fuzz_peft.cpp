// libFuzzer target: a PEFT adapter_config.json through read_peft_config.
#include "fuzz_common.h"
#include "lora/peft.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = hone::fuzz::scratch_subdir("peft");
  hone::fuzz::write_file(dir, "adapter_config.json", hone::fuzz::as_view(data, size));
  try {
    (void)hone::read_peft_config(dir);
  } catch (const hone::Error& e) {
    hone::fuzz::expected(e);
  }
  return 0;
}
