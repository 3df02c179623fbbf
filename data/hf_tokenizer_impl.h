// HfTokenizer's state (HfTokenizer::Impl) and the pipeline pieces it holds: built from
// tokenizer.json by hf_tokenizer_load.cpp, run by the encoder and decoder in hf_tokenizer.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "data/hf_text.h"
#include "data/hf_tokenizer.h"

namespace hone {

struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StrMap = std::unordered_map<std::string, V, SvHash, std::equal_to<>>;

// ---- the pipeline pieces -------------------------------------------------------------------

struct Normalizer {
  enum Kind { kNFC, kPrepend, kReplace, kLowercase, kSequence } kind;
  std::string a, b;                   // Prepend: a; Replace: a -> b (string pattern)
  std::unique_ptr<hftext::Regex> re;  // Replace with a regex pattern
  std::vector<Normalizer> children;

  void apply(std::string& s) const;
};

struct Pieces;  // hf_tokenizer.cpp

struct PreTokenizer {
  enum Kind { kSplit, kByteLevel, kMetaspace, kSequence } kind;
  std::unique_ptr<hftext::Regex> re;
  bool removed = false;           // Split behavior "Removed" (else "Isolated")
  bool add_prefix_space = false;  // ByteLevel
  std::string replacement;        // Metaspace
  std::string prepend_scheme;     // Metaspace: always / first / never
  bool split = true;              // Metaspace
  std::vector<PreTokenizer> children;

  void apply(Pieces& p, std::vector<std::pair<uint32_t, uint32_t>>& m) const;
};

struct DecodeStep {
  enum Kind { kByteLevel, kByteFallback, kFuse, kStrip, kReplace, kMetaspace, kSequence } kind;
  std::string a, b;  // Replace a -> b; Strip content a; Metaspace replacement a
  int start = 0, stop = 0;
  bool prefix_space = true;  // Metaspace: drop the first token's leading space
  std::vector<DecodeStep> children;
};

// ---- Impl --------------------------------------------------------------------------------

struct HfTokenizer::Impl {
  std::string path;
  // Model
  StrMap<int32_t> vocab;            // token -> id (model vocab + added tokens)
  std::vector<std::string> tokens;  // id -> token
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (a,b) -> (rank, new id)
  bool ignore_merges = false, byte_fallback = false, fuse_unk = false;
  int32_t unk_id = -1;
  int32_t byte_token[256];     // id of "<0xNN>" (byte fallback), or -1
  bool byte_level = false;     // a ByteLevel pre-tokenizer maps bytes to GPT-2's unicode chars
  int32_t byte_level_id[256];  // id of the single-char token for byte b (byte-level)
  std::vector<std::string> byte_level_char;  // byte -> its UTF-8 unicode stand-in
  std::unordered_map<uint32_t, uint8_t> unicode_to_byte;

  // Added tokens
  struct Added {
    std::string content;
    int32_t id;
    bool special, lstrip, rstrip;
  };
  std::vector<Added> added;
  std::vector<std::vector<int32_t>> added_by_first;  // first byte -> indices, longest first
  std::vector<uint8_t> special_flag;                 // per id
  std::vector<uint8_t> added_flag;                   // per id

  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre;
  std::unique_ptr<DecodeStep> decoder;

  std::vector<int32_t> prefix, suffix;  // post-processor tokens (add_bos / add_eos)
  int32_t bos = -1, eos = -1, pad = -1;
  bool clean_up = true;

  // word -> ids; guarded since encode is const and may run on several threads.
  mutable std::mutex cache_mu;
  mutable StrMap<std::vector<int32_t>> cache;

  int32_t id_of(std::string_view t) const {
    auto it = vocab.find(t);
    return it == vocab.end() ? -1 : it->second;
  }

  Normalizer parse_normalizer(const nlohmann::json& j);
  PreTokenizer parse_pre(const nlohmann::json& j);
  DecodeStep parse_decoder(const nlohmann::json& j);
  void load(const std::string& json_path);

  void encode_section(std::string_view text, std::vector<int32_t>& ids) const;
  void bpe(std::string_view word, std::vector<int32_t>& ids) const;
  void bpe_uncached(std::string_view word, std::vector<int32_t>& ids) const;
  void run_decoder(const DecodeStep& d, std::vector<std::string>& toks, bool at_start,
                   bool raw) const;
  std::string decode_ids(const std::vector<int32_t>& ids, bool skip_special, bool at_start,
                         bool raw) const;
};

}  // namespace hone
