// The tokenizer interface every format sits behind (llama2.c tok.bin now; Hugging Face
// tokenizer.json later), so data loaders and generation never care which file a model ships.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hone {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids for `text` (UTF-8). add_bos / add_eos add what the format adds around a sequence:
  // llama2.c's BOS/EOS; for tokenizer.json what Hugging Face's add_special_tokens adds (its
  // post-processor, else tokenizer_config's add_bos_token/add_eos_token) — which may be nothing
  // (Llama 3's original file, Qwen3), so training code appends eos_id() itself where needed.
  virtual std::vector<int32_t> encode(const std::string& text, bool add_bos,
                                      bool add_eos) const = 0;

  // The text `id` contributes when it follows `prev` (-1 when it starts the stream); for
  // streaming output. Some formats depend on `prev` (llama2.c strips the space after BOS).
  virtual std::string decode_token(int32_t prev, int32_t id) const = 0;

  // The text of a whole sequence, as the format's reference decodes it: llama2.c drops BOS/EOS
  // and the space after BOS, so decode(encode(t, bos, eos)) == t; tokenizer.json follows
  // Hugging Face's decode(ids), which keeps special tokens' text.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;

  virtual int32_t bos_id() const = 0;  // -1 if the vocabulary has none
  virtual int32_t eos_id() const = 0;  // -1 if the vocabulary has none
  virtual int32_t vocab_size() const = 0;
};

// Opens a tokenizer, detecting its format from the content: a Hugging Face tokenizer.json (or a
// folder holding one, with tokenizer_config.json beside it) or the llama2.c format
// (tokenizer.bin / tok512.bin). Throws hone::Error naming the file on any problem.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// The tokenizer that ships with a model: tokenizer.json, tokenizer.bin or tok512.bin inside the
// model's folder (or beside a model file). "" when there is none.
std::string find_model_tokenizer(const std::string& model_path);

}  // namespace hone
