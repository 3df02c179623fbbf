// libFuzzer target: a GGUF file through everything that reads one: read_gguf (header, metadata,
// tensor table), every tensor's values (dequantized), the model config, the embedded tokenizer
// metadata, the whole model (read_gguf_model) and the tokenizer hone builds from the embedded
// vocabulary (tokenizer_for_model), which is then used once.
#include "fuzz_common.h"
#include "model/io/gguf.h"
#include "model/io/gguf_model.h"
#include "recipes/model_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A folder of its own: tokenizer_for_model looks for a tokenizer file beside the model.
  static const std::string dir = hone::fuzz::scratch_subdir("gguf");
  const std::string path =
      hone::fuzz::write_file(dir, "model.gguf", hone::fuzz::as_view(data, size));
  try {
    const hone::GgufFile f = hone::read_gguf(path);
    for (const auto& info : f.tensors) {
      try {
        const hone::Tensor t = hone::gguf_tensor(f, info);
        volatile size_t sink = t.nbytes();
        (void)sink;
      } catch (const hone::Error& e) {
        hone::fuzz::expected(e);
      }
    }
    try {
      (void)hone::gguf_model_config(f);
    } catch (const hone::Error& e) {
      hone::fuzz::expected(e);
    }
    try {
      (void)hone::gguf_tokenizer(f);
    } catch (const hone::Error& e) {
      hone::fuzz::expected(e);
    }
  } catch (const hone::Error& e) {
    hone::fuzz::expected(e);
  }
  try {
    (void)hone::read_gguf_model(path);
  } catch (const hone::Error& e) {
    hone::fuzz::expected(e);
  }
  try {
    const auto tok = hone::tokenizer_for_model(path, "");
    const auto ids = tok->encode("Hello world, 12 <s> caf\xC3\xA9!", true, true);
    (void)tok->decode(ids);
  } catch (const hone::Error& e) {
    hone::fuzz::expected(e);
  }
  return 0;
}
