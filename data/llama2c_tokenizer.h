// The llama2.c tokenizer (tokenizer.bin, tok512.bin): a SentencePiece BPE vocabulary flattened to
// int32 max_token_length, then per token float32 score, int32 byte length, raw UTF-8 bytes
// ("▁" already replaced by " "). Encoding and decoding follow llama2.c's run.c (one deliberate
// difference: BOS never takes part in merges; run.c would try "\n<s>\n" + piece, never in a vocab).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/tokenizer.h"

namespace hone {

class Llama2cTokenizer final : public Tokenizer {
 public:
  // The file holds no token count: by default every record up to end of file is read; with
  // `vocab_size` >= 0 exactly that many are required (as run.c takes it from the model header).
  explicit Llama2cTokenizer(const std::string& path, int32_t vocab_size = -1);
  // From a SentencePiece vocabulary already in memory (e.g. a GGUF file's, "▁" replaced by " "
  // by the caller); ids 1 and 2 are BOS and EOS as in llama2.c. `source` names it in errors.
  Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores, std::string source);

  // run.c: optional BOS; a dummy-prefix " " when text is non-empty; each UTF-8 codepoint as one
  // token, else its bytes as <0xNN> tokens; then merge the adjacent pair whose concatenation has
  // the highest score (leftmost on ties) until none is in the vocabulary; optional EOS.
  std::vector<int32_t> encode(const std::string& text, bool add_bos, bool add_eos) const override;
  // run.c: a piece after BOS loses its leading space; "<0xNN>" pieces give the raw byte.
  std::string decode_token(int32_t prev, int32_t id) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;

  int32_t bos_id() const override { return 1; }
  int32_t eos_id() const override { return 2; }
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }

  int32_t max_token_length() const { return max_token_length_; }
  const std::string& piece(int32_t id) const;  // the raw vocabulary entry
  float score(int32_t id) const;
  int32_t lookup(std::string_view piece) const;  // -1 if absent

 private:
  void check_id(int32_t id) const;
  void build_index();

  std::string path_;
  int32_t max_token_length_ = 0;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  // Transparent hash, so string_view lookups need no temporary string.
  struct PieceHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int32_t, PieceHash, std::equal_to<>> ids_;  // first id wins
  int32_t byte_ids_[256];  // id of "<0xNN>", or -1
};

}  // namespace hone
