// Hugging Face tokenizer.json tokenizers (BPE models: byte-level as Llama 3 / Qwen, and
// SentencePiece-style with byte fallback as Mistral / Llama 2 / TinyLlama), id-exact with the
// reference (transformers.js, @lenml/tokenizers 3.7.2, which follows HF tokenizers).
//
// Pipeline of encode: added/special tokens are matched in the raw text first (longest match,
// leftmost; lstrip/rstrip trim the neighbouring text) and never split; each text section between
// them goes through normalizer -> pre-tokenizer -> BPE model; the post-processor's tokens are
// added as `add_bos` / `add_eos` ask (see encode).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer.h"

namespace hone {

struct HfDecodeOptions {
  bool skip_special_tokens = false;     // drop tokens marked special in added_tokens
  std::optional<bool> clean_up_spaces;  // default: tokenizer_config's clean_up_tokenization_spaces
};

class HfTokenizer final : public Tokenizer {
 public:
  // `json_path` is a tokenizer.json; tokenizer_config.json beside it is read when present.
  explicit HfTokenizer(const std::string& json_path);
  ~HfTokenizer() override;

  // add_bos / add_eos map onto what HF's encode(add_special_tokens=True) adds: add_bos adds the
  // post-processor's special tokens before the text (TemplateProcessing: e.g. Mistral's <s>),
  // add_eos those after it. With no template (Llama 3's original ByteLevel post-processor, Qwen)
  // add_bos adds bos_id only if tokenizer_config.json says add_bos_token: true, and add_eos adds
  // eos_id only if it says add_eos_token: true. So encode(t, true, true) == HF encode(t) and
  // encode(t, false, false) == HF encode(t, add_special_tokens=False). Callers that always want
  // EOS (training targets) append eos_id() themselves.
  std::vector<int32_t> encode(const std::string& text, bool add_bos, bool add_eos) const override;

  // The bytes `id` adds after `prev` (-1 = stream start; bos_id counts as a start too): as
  // decode() but without whitespace clean-up, with leading-space stripping (Strip / Metaspace
  // decoders) only at the start, and with byte tokens (<0xNN>, byte-level pieces of a split
  // character) given as raw bytes. The concatenation over a stream is exact UTF-8, but one
  // token's output may end inside a multi-byte character: use StreamDecoder to print.
  std::string decode_token(int32_t prev, int32_t id) const override;

  // HF's decode(ids) (skip_special_tokens=False): special tokens contribute their text, as the
  // reference does, and clean_up_tokenization_spaces applies as the config says.
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string decode(const std::vector<int32_t>& ids, const HfDecodeOptions& opt) const;

  int32_t bos_id() const override;
  int32_t eos_id() const override;
  int32_t pad_id() const;  // -1 if none
  int32_t vocab_size() const override;

  int32_t token_to_id(std::string_view token) const;  // -1 if absent
  const std::string& id_to_token(int32_t id) const;   // throws on a bad id
  bool is_special(int32_t id) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Streaming detokenizer for any Tokenizer: push ids as they are generated and print what comes
// back; bytes of a character split across tokens are held until it is complete, so the output
// never ends inside a UTF-8 sequence. flush() returns what is left (invalid bytes as U+FFFD).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  std::string push(int32_t id);
  std::string flush();

 private:
  const Tokenizer& tok_;
  int32_t prev_ = -1;
  std::string pending_;
};

// The tokenizer.json to load for `path`: `path` itself when it is a file, `path`/tokenizer.json
// when it is a folder holding one; "" otherwise.
std::string find_hf_tokenizer_json(const std::string& path);

}  // namespace hone
