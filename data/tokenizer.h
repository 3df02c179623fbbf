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

  // Token ids for `text` (UTF-8), with the beginning/end-of-sequence ids added when asked.
  virtual std::vector<int32_t> encode(const std::string& text, bool add_bos,
                                      bool add_eos) const = 0;

  // The text `id` contributes when it follows `prev` (-1 when it starts the stream); for
  // streaming output. Some formats depend on `prev` (llama2.c strips the space after BOS).
  virtual std::string decode_token(int32_t prev, int32_t id) const = 0;

  // The text of a whole sequence: control tokens (BOS/EOS) contribute nothing, and the sequence
  // start is treated as following BOS, so decode(encode(t, bos, eos)) == t for either flag.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;

  virtual int32_t bos_id() const = 0;  // -1 if the vocabulary has none
  virtual int32_t eos_id() const = 0;  // -1 if the vocabulary has none
  virtual int32_t vocab_size() const = 0;
};

// Opens a tokenizer file, detecting its format from the content. Supported: the llama2.c
// format (tokenizer.bin / tok512.bin). Throws hone::Error naming the file on any problem.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace hone
