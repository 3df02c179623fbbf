#include "recipes/model_tokenizer_gguf.h"

#include <algorithm>
#include <filesystem>
#include <tuple>
#include <unordered_map>

#include "autograd/error.h"
#include "autograd/json_parse.h"
#include "data/chat_template.h"

namespace hone {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

constexpr const char* kSpace = "\xe2\x96\x81";  // SentencePiece's "▁"

// The split regexes of the tokenizer.json files llama.cpp's names stand for (llama.cpp
// hard-codes an equivalent of each): Llama 3 groups up to three digits, Qwen2 takes one.
constexpr const char* kLlama3Split =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2Split =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// A pre-tokenizer llama.cpp knows by name, as tokenizer.json spells it.
struct PreKind {
  const char* name;
  const char* split;   // a Split regex followed by a regex-free ByteLevel; nullptr: none
  bool digits;         // Digits(individual_digits) before a ByteLevel with GPT-2's regex
  bool nfc;            // the family's tokenizer.json normalizes to NFC (Qwen2)
  bool ignore_merges;  // llama.cpp's llama3 pre-type looks whole words up before merging
};
constexpr PreKind kPreKinds[] = {
    {"llama-bpe", kLlama3Split, false, false, true},
    {"qwen2", kQwen2Split, false, true, false},
    {"gpt-2", nullptr, false, false, false},
    {"smollm", nullptr, true, false, false},
};
constexpr const char* kKnownPres =
    "Llama 3's split regex (llama-bpe), Qwen2's (qwen2), GPT-2's ByteLevel regex (gpt-2), "
    "single digits then GPT-2's regex (smollm)";

const PreKind* pre_kind(const std::string& name) {
  for (const PreKind& k : kPreKinds)
    if (name == k.name) return &k;
  if (name == "llama3") return &kPreKinds[0];  // llama.cpp's older name for the same split
  return nullptr;
}

void flatten(const json& p, std::vector<json>& out) {
  if (p.is_object() && p.value("type", "") == "Sequence" && p.contains("pretokenizers")) {
    for (const auto& c : p["pretokenizers"]) flatten(c, out);
  } else if (!p.is_null()) {
    out.push_back(p);
  }
}

bool is_type(const json& s, const char* type) {
  return s.is_object() && s.contains("type") && s["type"].is_string() && s["type"] == type;
}

// A ByteLevel step with no prefix space, using GPT-2's regex or not (defaults as HF's loader).
bool byte_level(const json& s, bool regex) {
  return is_type(s, "ByteLevel") && !s.value("add_prefix_space", false) &&
         s.value("use_regex", true) == regex;
}

std::string describe(const std::vector<json>& steps) {
  if (steps.empty()) return "none";
  std::string out;
  for (const json& s : steps) {
    if (!out.empty()) out += " + ";
    out += s.is_object() ? s.value("type", "?") : "?";
    if (is_type(s, "Split") && s.contains("pattern") && s["pattern"].is_object()) {
      std::string re = s["pattern"].dump();
      if (re.size() > 80) re = re.substr(0, 77) + "...";
      out += " " + re;
    }
  }
  return out;
}

// What HF's encode(add_special_tokens=True) adds, the special tokens, and the chat template of
// the tokenizer_config.json beside `path`.
void fill_specials(GgufTokenizerData& d, const HfTokenizer& hf, const std::string& path) {
  d.bos_id = hf.bos_id();
  d.eos_id = hf.eos_id();
  d.pad_id = hf.pad_id();
  // Written as tokenizer.ggml.add_bos_token / add_eos_token, so llama.cpp does not guess.
  d.add_bos = !hf.encode("", true, false).empty();
  d.add_eos = !hf.encode("", false, true).empty();
  // A tokenizer_config.json without a chat_template (base models) means no template, as an
  // absent file does; a template that is there but malformed is still an error.
  const fs::path cfg = fs::path(path).parent_path() / "tokenizer_config.json";
  if (fs::exists(cfg)) {
    const auto c = parse_json_file<json>(cfg.string());
    if (!c.is_object() || (c.contains("chat_template") && !c["chat_template"].is_null()))
      d.chat_template = chat_template_from_config(cfg.string());
  }
}

// Ids are checked by HfTokenizer already; this sizes the table (padded to the model's rows).
size_t vocabulary_size(const json& j, int64_t model_rows) {
  size_t n = 0;
  for (const auto& [tok, id] : j.at("model").at("vocab").items())
    n = std::max(n, static_cast<size_t>(id.get<int64_t>()) + 1);
  for (const auto& a : j.value("added_tokens", json::array()))
    n = std::max(n, static_cast<size_t>(a.at("id").get<int64_t>()) + 1);
  return std::max(n, static_cast<size_t>(std::max<int64_t>(model_rows, 0)));
}

bool is_byte_piece(const std::string& p) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return p.size() == 6 && p.rfind("<0x", 0) == 0 && hex(p[3]) && hex(p[4]) && p[5] == '>';
}

GgufTokenizerData gguf_gpt2_from_json(const json& j, const HfTokenizer& hf, const std::string& path,
                                      int64_t model_rows) {
  GgufTokenizerData d;
  d.model = "gpt2";
  d.pre = gguf_pre_for(j, path);
  const auto& model = j.at("model");
  const size_t n = vocabulary_size(j, model_rows);
  d.tokens.assign(n, "");
  d.token_types.assign(n, 5);  // unused padding entries unless the vocabulary names them
  for (size_t i = 0; i < n; ++i) d.tokens[i] = "[PAD" + std::to_string(i) + "]";
  for (const auto& [tok, id] : model.at("vocab").items()) {
    d.tokens[id.get<size_t>()] = tok;
    d.token_types[id.get<size_t>()] = 1;
  }
  for (const auto& a : j.value("added_tokens", json::array())) {
    const size_t id = a.at("id").get<size_t>();
    d.tokens[id] = a.at("content").get<std::string>();
    d.token_types[id] = a.value("special", false) ? 3 : 4;  // control : user-defined
  }
  for (const auto& m : model.at("merges"))
    d.merges.push_back(m.is_string()
                           ? m.get<std::string>()
                           : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
  fill_specials(d, hf, path);
  return d;
}

bool prepends_space(const json& n) {
  if (is_type(n, "Prepend")) return n.value("prepend", "") == kSpace;
  if (is_type(n, "Sequence") && n.contains("normalizers"))
    for (const auto& c : n["normalizers"])
      if (prepends_space(c)) return true;
  return false;
}

}  // namespace

std::string gguf_pre_for(const json& j, const std::string& path) {
  std::vector<json> steps;
  if (j.contains("pre_tokenizer")) flatten(j["pre_tokenizer"], steps);
  const PreKind* found = nullptr;
  if (steps.size() == 2 && is_type(steps[0], "Split") && byte_level(steps[1], false) &&
      !steps[0].value("invert", false) && steps[0].value("behavior", "") == "Isolated" &&
      steps[0].contains("pattern") && steps[0]["pattern"].is_object() &&
      steps[0]["pattern"].contains("Regex") && steps[0]["pattern"]["Regex"].is_string()) {
    const std::string re = steps[0]["pattern"]["Regex"];
    for (const PreKind& k : kPreKinds)
      if (k.split && re == k.split) found = &k;
  } else if (steps.size() == 1 && byte_level(steps[0], true)) {
    found = pre_kind("gpt-2");
  } else if (steps.size() == 2 && is_type(steps[0], "Digits") &&
             steps[0].value("individual_digits", false) && byte_level(steps[1], true)) {
    found = pre_kind("smollm");
  }
  if (!found)
    throw Error(path + ": pre_tokenizer: " + describe(steps) +
                " is not a pre-tokenizer hone can name for llama.cpp (it knows " + kKnownPres +
                "); llama.cpp would split text differently from this tokenizer, so no GGUF is "
                "written");
  return found->name;
}

bool is_sentencepiece_json(const json& j) {
  const json& m = j.at("model");
  if (m.value("type", "BPE") != "BPE" || !m.value("byte_fallback", false)) return false;
  if (j.contains("normalizer") && prepends_space(j["normalizer"])) return true;
  std::vector<json> steps;
  if (j.contains("pre_tokenizer")) flatten(j["pre_tokenizer"], steps);
  return steps.size() == 1 && is_type(steps[0], "Metaspace") &&
         steps[0].value("replacement", kSpace) == kSpace &&
         steps[0].value("prepend_scheme", "always") != "never";
}

GgufTokenizerData gguf_llama_from_tokenizer_json(const json& j, const HfTokenizer& hf,
                                                 const std::string& path) {
  GgufTokenizerData d;
  d.model = "llama";
  d.pre = "default";  // llama.cpp ignores the name for SentencePiece vocabularies
  const json& model = j.at("model");
  const size_t n = vocabulary_size(j, 0);
  d.tokens.assign(n, "");
  d.token_types.assign(n, 5);
  for (size_t i = 0; i < n; ++i) d.tokens[i] = "[PAD" + std::to_string(i) + "]";
  const std::string unk = model.contains("unk_token") && model["unk_token"].is_string()
                              ? model["unk_token"].get<std::string>()
                              : std::string();
  for (const auto& [tok, id] : model.at("vocab").items()) {
    const size_t i = id.get<size_t>();
    d.tokens[i] = tok;
    d.token_types[i] = tok == unk ? 2 : is_byte_piece(tok) ? 6 : 1;
  }
  for (const auto& a : j.value("added_tokens", json::array())) {
    const size_t id = a.at("id").get<size_t>();
    d.tokens[id] = a.at("content").get<std::string>();
    if (d.tokens[id] != unk) d.token_types[id] = a.value("special", false) ? 3 : 4;
  }
  // llama.cpp merges the adjacent pair whose join scores highest; HF takes the lowest-ranked
  // merge. A token scoring minus the rank of the first merge that makes it gives HF's order.
  const json& merges = model.at("merges");
  std::unordered_map<std::string, int64_t> first_rank;
  for (size_t r = 0; r < merges.size(); ++r) {
    const json& m = merges[r];
    std::string joined;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ', 1);
      joined = s.substr(0, sp) + s.substr(sp + 1);
    } else {
      joined = m.at(0).get<std::string>() + m.at(1).get<std::string>();
    }
    first_rank.emplace(joined, static_cast<int64_t>(r));
  }
  d.scores.assign(n, 0.0f);
  const auto n_merges = static_cast<float>(merges.size());
  for (size_t i = 0; i < n; ++i) {
    if (d.token_types[i] != 1) continue;
    const auto it = first_rank.find(d.tokens[i]);
    // A piece no merge makes (single characters) ranks after every merge.
    d.scores[i] = it != first_rank.end() ? -static_cast<float>(it->second)
                                         : -(n_merges + static_cast<float>(i));
  }
  const int32_t unk_id = hf.token_to_id(unk);
  d.unk_id = unk.empty() ? -1 : unk_id;
  fill_specials(d, hf, path);
  return d;
}

GgufTokenizerData gguf_tokenizer_from_json(const std::string& path, const ModelConfig& config) {
  HfTokenizer hf(path);  // validates the file: ids, merges, special tokens
  const auto j = parse_json_file<json>(path);
  const json& model = j.at("model");
  if (model.value("type", "BPE") == "BPE" && is_sentencepiece_json(j)) {
    GgufTokenizerData d = gguf_llama_from_tokenizer_json(j, hf, path);
    // Padded embeddings: the extra rows are unused tokens llama.cpp never produces.
    for (auto i = static_cast<int64_t>(d.tokens.size()); i < config.vocab_size; ++i) {
      d.tokens.push_back("[PAD" + std::to_string(i) + "]");
      d.token_types.push_back(5);
      d.scores.push_back(0.0f);
    }
    return d;
  }
  const bool byte_level_pre = j.contains("pre_tokenizer") &&
                              j["pre_tokenizer"].dump().find("\"ByteLevel\"") != std::string::npos;
  if (model.value("type", "BPE") != "BPE" || !byte_level_pre)
    throw Error(
        path +
        ": model: only BPE tokenizers can be exported to GGUF: byte-level (Llama 3, "
        "Qwen, GPT-2, SmolLM) or SentencePiece-style with byte_fallback and \"\xe2\x96\x81\" "
        "for spaces (Llama 2, Mistral, TinyLlama)");
  return gguf_gpt2_from_json(j, hf, path, config.vocab_size);
}

namespace {

ojson gpt2_tokenizer_json(const GgufTokenizerData& t, const std::string& source) {
  const PreKind* kind = pre_kind(t.pre);
  if (!kind)
    throw Error(source + ": tokenizer.ggml.pre: \"" + t.pre +
                "\" is not a pre-tokenizer hone knows (" + kKnownPres +
                "); pass --tokenizer with the model's tokenizer.json");
  // (A plain json object for the vocabulary: ordered_json looks keys up linearly.)
  json vocab = json::object();
  ojson added = ojson::array();
  for (size_t id = 0; id < t.tokens.size(); ++id) {
    const int32_t type = id < t.token_types.size() ? t.token_types[id] : 1;
    if (type == 3 || type == 4)
      added.push_back({{"id", id},
                       {"content", t.tokens[id]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", type == 4},
                       {"special", type == 3}});
    else if (type != 5)
      vocab[t.tokens[id]] = id;
  }
  auto byte_level_step = [](bool regex) {
    return ojson{{"type", "ByteLevel"},
                 {"add_prefix_space", false},
                 {"trim_offsets", false},
                 {"use_regex", regex}};
  };
  ojson pre;
  if (kind->split) {
    pre = {{"type", "Sequence"},
           {"pretokenizers",
            {{{"type", "Split"},
              {"pattern", {{"Regex", kind->split}}},
              {"behavior", "Isolated"},
              {"invert", false}},
             byte_level_step(false)}}};
  } else if (kind->digits) {
    pre = {{"type", "Sequence"},
           {"pretokenizers",
            {{{"type", "Digits"}, {"individual_digits", true}}, byte_level_step(true)}}};
  } else {
    pre = byte_level_step(true);
  }
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", kind->nfc ? ojson{{"type", "NFC"}} : ojson(nullptr)},
          {"pre_tokenizer", pre},
          {"post_processor", byte_level_step(false)},
          {"decoder", byte_level_step(false)},
          {"model",
           {{"type", "BPE"},
            {"ignore_merges", kind->ignore_merges},
            {"byte_fallback", false},
            {"fuse_unk", false},
            {"vocab", vocab},
            {"merges", t.merges}}}};
}

// SentencePiece BPE as HF's converters write it: every pair of pieces whose join is a piece is a
// merge, ordered by the join's score (best first), so HF's rank order is SentencePiece's.
ojson llama_tokenizer_json(const GgufTokenizerData& t, const std::string& source, bool add_bos,
                           bool add_eos) {
  if (t.scores.size() != t.tokens.size())
    throw Error(source +
                ": tokenizer.ggml.scores: missing (a \"llama\" vocabulary merges by "
                "score)");
  auto type_of = [&](size_t id) { return id < t.token_types.size() ? t.token_types[id] : 1; };
  json vocab = json::object();
  ojson added = ojson::array();
  std::unordered_map<std::string, int32_t> normal;  // mergeable pieces, first id wins
  for (size_t id = 0; id < t.tokens.size(); ++id) {
    const int32_t type = type_of(id);
    if (type == 3 || type == 4) {
      added.push_back({{"id", id},
                       {"content", t.tokens[id]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", type == 4},
                       {"special", type == 3}});
      continue;
    }
    if (type == 5 || vocab.contains(t.tokens[id])) continue;
    vocab[t.tokens[id]] = id;
    if (type == 1) normal.emplace(t.tokens[id], static_cast<int32_t>(id));
  }
  // run.c never merges into a piece scoring at or below -1e10; neither does hone's reader.
  constexpr float kMergeFloor = -1e10f;
  std::vector<std::tuple<float, int32_t, int32_t, int32_t>> cands;  // -score, join, left, right
  for (const auto& [piece, id] : normal) {
    if (!(t.scores[id] > kMergeFloor)) continue;
    for (size_t k = 1; k < piece.size(); ++k) {
      if ((static_cast<unsigned char>(piece[k]) & 0xC0) == 0x80) continue;  // inside a character
      const auto l = normal.find(piece.substr(0, k));
      if (l == normal.end()) continue;
      const auto r = normal.find(piece.substr(k));
      if (r == normal.end()) continue;
      cands.emplace_back(-t.scores[id], id, l->second, r->second);
    }
  }
  std::sort(cands.begin(), cands.end());
  ojson merges = ojson::array();
  for (const auto& [s, id, l, r] : cands) merges.push_back({t.tokens[l], t.tokens[r]});

  auto piece = [&](int64_t id) {
    return id >= 0 && static_cast<size_t>(id) < t.tokens.size() ? t.tokens[id] : std::string();
  };
  ojson single = ojson::array(), special = ojson::object();
  auto add_special = [&](int64_t id) {
    single.push_back({{"SpecialToken", {{"id", piece(id)}, {"type_id", 0}}}});
    special[piece(id)] = {{"id", piece(id)}, {"ids", {id}}, {"tokens", {piece(id)}}};
  };
  if (add_bos && t.bos_id >= 0) add_special(t.bos_id);
  single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  if (add_eos && t.eos_id >= 0) add_special(t.eos_id);
  const ojson unk = t.unk_id >= 0 ? ojson(piece(t.unk_id)) : ojson(nullptr);
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer",
           {{"type", "Sequence"},
            {"normalizers",
             {{{"type", "Prepend"}, {"prepend", kSpace}},
              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpace}}}}}},
          {"pre_tokenizer", nullptr},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single", single},
            {"pair", single},
            {"special_tokens", special}}},
          {"decoder",
           {{"type", "Sequence"},
            {"decoders",
             {{{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}},
              {{"type", "ByteFallback"}},
              {{"type", "Fuse"}},
              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
          {"model",
           {{"type", "BPE"},
            {"unk_token", unk},
            {"fuse_unk", true},
            {"byte_fallback", true},
            {"ignore_merges", false},
            {"vocab", vocab},
            {"merges", merges}}}};
}

}  // namespace

HfTokenizerFiles hf_files_from_gguf(const GgufTokenizerData& t, const std::string& source) {
  // llama.cpp adds BOS to a "llama" vocabulary's text unless the file says otherwise.
  const bool spm = t.model == "llama";
  const bool add_bos = t.add_bos.value_or(spm), add_eos = t.add_eos.value_or(false);
  ojson j;
  if (spm)
    j = llama_tokenizer_json(t, source, add_bos, add_eos);
  else if (t.model == "gpt2")
    j = gpt2_tokenizer_json(t, source);
  else
    throw Error(source + ": tokenizer.ggml.model: \"" + t.model +
                "\" is not supported (hone reads \"llama\" and \"gpt2\" vocabularies)");
  ojson cfg = {{"clean_up_tokenization_spaces", false},
               {"add_bos_token", add_bos},
               {"add_eos_token", add_eos}};
  auto content = [&](int64_t id) {
    return id >= 0 && static_cast<size_t>(id) < t.tokens.size() ? t.tokens[id] : std::string();
  };
  if (t.bos_id >= 0) cfg["bos_token"] = content(t.bos_id);
  if (t.eos_id >= 0) cfg["eos_token"] = content(t.eos_id);
  if (t.unk_id >= 0) cfg["unk_token"] = content(t.unk_id);
  if (t.pad_id >= 0) cfg["pad_token"] = content(t.pad_id);
  if (!t.chat_template.empty()) cfg["chat_template"] = t.chat_template;

  // JSON text must be UTF-8; a GGUF's strings need not be. Name the first one that is not.
  HfTokenizerFiles out;
  try {
    out.tokenizer_json = j.dump();
    out.tokenizer_config_json = cfg.dump(2);
  } catch (const json::exception&) {
    for (size_t i = 0; i < t.tokens.size(); ++i) try {
        (void)json(t.tokens[i]).dump();
      } catch (const json::exception&) {
        throw Error(source + ": tokenizer.ggml.tokens[" + std::to_string(i) + "]: not valid UTF-8");
      }
    throw Error(source +
                ": tokenizer metadata (merges, chat template or a special token): not "
                "valid UTF-8");
  }
  return out;
}

}  // namespace hone
