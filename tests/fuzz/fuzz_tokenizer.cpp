// libFuzzer target: a tokenizer.json and, after the separator line kConfigSep, the
// tokenizer_config.json beside it, through load_tokenizer (format detection, then HfTokenizer's
// loader), then one encode/decode round and the chat template lookup of the config.
#include "data/chat_template.h"
#include "data/hf_tokenizer.h"
#include "data/tokenizer.h"
#include "fuzz_common.h"

namespace {

constexpr std::string_view kConfigSep = "\n--- tokenizer_config.json ---\n";

// Plain words, digits, a contraction, multi-byte UTF-8 (2, 3 and 4 bytes), an invalid byte and
// the special tokens of the seed vocabularies.
constexpr std::string_view kText =
    "<s>Hello world, it's 2024! caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 \xFF "
    "<|im_start|>user\n  tabs\t<|im_end|></s><|begin_of_text|>";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = hone::fuzz::scratch_subdir("tokenizer");
  const auto parts = hone::fuzz::split(hone::fuzz::as_view(data, size), kConfigSep);
  const std::string json_path = hone::fuzz::write_file(dir, "tokenizer.json", parts[0]);
  const std::string cfg_path = dir + "/tokenizer_config.json";
  if (parts.size() > 1) {
    hone::fuzz::write_file(dir, "tokenizer_config.json", parts[1]);
  } else {
    std::filesystem::remove(cfg_path);
  }
  try {
    const auto tok = hone::load_tokenizer(json_path);
    const auto ids = tok->encode(std::string(kText), true, true);
    (void)tok->decode(ids);
    hone::StreamDecoder stream(*tok);
    for (int32_t id : ids) (void)stream.push(id);
    (void)stream.flush();
    // Every id the tokenizer reports as valid decodes (bounded for large vocabularies).
    const int32_t n = tok->vocab_size();
    for (int32_t id = 0; id < n && id < 4096; ++id) (void)tok->decode_token(-1, id);
    for (int32_t id : {tok->bos_id(), tok->eos_id()})
      if (id >= 0) (void)tok->decode({id});
    if (const auto* hf = dynamic_cast<const hone::HfTokenizer*>(tok.get())) {
      (void)hf->decode(ids, hone::HfDecodeOptions{true, false});
      (void)hf->pad_id();
    }
  } catch (const hone::Error& e) {
    hone::fuzz::expected(e);
  }
  if (parts.size() > 1) {
    try {
      (void)hone::chat_template_from_config(cfg_path);
    } catch (const hone::Error& e) {
      hone::fuzz::expected(e);
    }
  }
  return 0;
}
