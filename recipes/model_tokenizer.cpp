#include "recipes/model_tokenizer.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "autograd/json_parse.h"
#include "data/chat_template.h"
#include "data/hf_tokenizer.h"
#include "data/instruct_dataset.h"
#include "data/llama2c_tokenizer.h"

namespace hone {

namespace fs = std::filesystem;

namespace {

bool is_gguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::string(magic, 4) == "GGUF";
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

std::string resolve_tokenizer(const std::string& model_path, const std::string& tokenizer_path) {
  return tokenizer_path.empty() ? find_model_tokenizer(model_path) : tokenizer_path;
}

GgufTokenizerData from_llama2c(const std::string& path) {
  Llama2cTokenizer tok(path);
  GgufTokenizerData d;
  d.model = "llama";
  d.pre = "default";
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    std::string piece = tok.piece(id);
    int32_t type = 1;  // normal
    if (id == 0) {
      piece = "<unk>", type = 2;
    } else if (id == 1) {
      piece = "<s>", type = 3;  // llama2.c stores "\n<s>\n": SentencePiece's name is "<s>"
    } else if (id == 2) {
      piece = "</s>", type = 3;
    } else if (piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece.back() == '>') {
      type = 6;  // byte fallback
    } else {
      piece = replace_all(piece, " ", "\xe2\x96\x81");  // back to SentencePiece's "▁"
    }
    d.tokens.push_back(piece);
    d.scores.push_back(tok.score(id));
    d.token_types.push_back(type);
  }
  d.unk_id = 0, d.bos_id = 1, d.eos_id = 2;
  return d;
}

GgufTokenizerData from_tokenizer_json(const std::string& path, const ModelConfig& config) {
  HfTokenizer hf(path);  // validates the file: ids, merges, special tokens
  const auto j = parse_json_file<nlohmann::json>(path);
  const auto& model = j.at("model");
  if (model.value("type", "BPE") != "BPE" ||
      j.at("pre_tokenizer").dump().find("ByteLevel") == std::string::npos)
    throw Error(path +
                ": only byte-level BPE tokenizers (Llama 3, Qwen) can be exported to GGUF "
                "so far");
  GgufTokenizerData d;
  d.model = "gpt2";
  d.pre = config.model_type == "qwen2" || config.model_type == "qwen3" ? "qwen2"
          : config.model_type == "llama"                               ? "llama-bpe"
                                                                       : "default";
  size_t n = 0;
  for (const auto& [tok, id] : model.at("vocab").items())
    n = std::max(n, static_cast<size_t>(id.get<int64_t>()) + 1);
  for (const auto& a : j.value("added_tokens", nlohmann::json::array()))
    n = std::max(n, static_cast<size_t>(a.at("id").get<int64_t>()) + 1);
  n = std::max(n, static_cast<size_t>(config.vocab_size));  // padded vocabularies
  d.tokens.assign(n, "");
  d.token_types.assign(n, 1);
  for (size_t i = 0; i < n; ++i) d.tokens[i] = "[PAD" + std::to_string(i) + "]";
  for (const auto& [tok, id] : model.at("vocab").items()) d.tokens[id.get<size_t>()] = tok;
  std::vector<bool> seen(n, false);
  for (const auto& [tok, id] : model.at("vocab").items()) seen[id.get<size_t>()] = true;
  for (const auto& a : j.value("added_tokens", nlohmann::json::array())) {
    const size_t id = a.at("id").get<size_t>();
    d.tokens[id] = a.at("content").get<std::string>();
    d.token_types[id] = a.value("special", false) ? 3 : 4;  // control : user-defined
    seen[id] = true;
  }
  for (size_t i = 0; i < n; ++i)
    if (!seen[i]) d.token_types[i] = 5;  // unused padding entries
  for (const auto& m : model.at("merges"))
    d.merges.push_back(m.is_string()
                           ? m.get<std::string>()
                           : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
  d.bos_id = hf.bos_id();
  d.eos_id = hf.eos_id();
  d.pad_id = hf.pad_id();
  // Whether HF's encode (add_special_tokens=True) puts special tokens before / after a text:
  // written as tokenizer.ggml.add_bos_token / add_eos_token, so llama.cpp does not guess.
  d.add_bos = !hf.encode("", true, false).empty();
  d.add_eos = !hf.encode("", false, true).empty();
  // A tokenizer_config.json without a chat_template (base models) means no template, as an
  // absent file does; a template that is there but malformed is still an error.
  const fs::path cfg = fs::path(path).parent_path() / "tokenizer_config.json";
  if (fs::exists(cfg)) {
    const auto c = parse_json_file<nlohmann::json>(cfg.string());
    if (!c.is_object() || (c.contains("chat_template") && !c["chat_template"].is_null()))
      d.chat_template = chat_template_from_config(cfg.string());
  }
  return d;
}

// The split regexes llama.cpp's pre-tokenizer names stand for (as in the models' own
// tokenizer.json files): Llama 3 groups up to three digits, Qwen2/Qwen3 one.
const char* split_regex_for(const std::string& pre) {
  if (pre == "llama-bpe" || pre == "llama3")
    return "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
           "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  if (pre == "qwen2")
    return "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
           "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  return nullptr;
}

// A GGUF "gpt2" (byte-level BPE) vocabulary as a Hugging Face tokenizer: the tokenizer.json it
// stands for is written to a private temporary folder, loaded, and removed.
std::unique_ptr<Tokenizer> hf_tokenizer_from_gguf(const GgufTokenizerData& t,
                                                  const std::string& source) {
  const char* regex = split_regex_for(t.pre);
  if (!regex)
    throw Error(source + ": GGUF pre-tokenizer \"" + t.pre +
                "\" is not known to hone (pass --tokenizer PATH)");
  // (A plain json object for the vocabulary: ordered_json looks keys up linearly.)
  nlohmann::json vocab = nlohmann::json::object();
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
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
  const nlohmann::ordered_json byte_level = {{"type", "ByteLevel"},
                                             {"add_prefix_space", false},
                                             {"trim_offsets", false},
                                             {"use_regex", false}};
  nlohmann::ordered_json j = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", t.pre == "qwen2" ? nlohmann::ordered_json{{"type", "NFC"}}
                                      : nlohmann::ordered_json(nullptr)},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", regex}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          byte_level}}}},
      {"post_processor", byte_level},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"},
        {"ignore_merges", t.pre == "llama-bpe"},
        {"byte_fallback", false},
        {"fuse_unk", false},
        {"vocab", vocab},
        {"merges", t.merges}}}};
  nlohmann::ordered_json cfg = {{"clean_up_tokenization_spaces", false},
                                {"add_bos_token", t.add_bos.value_or(false)},
                                {"add_eos_token", t.add_eos.value_or(false)}};
  auto content = [&](int64_t id) {
    return id >= 0 && static_cast<size_t>(id) < t.tokens.size() ? t.tokens[id] : std::string();
  };
  if (t.bos_id >= 0) cfg["bos_token"] = content(t.bos_id);
  if (t.eos_id >= 0) cfg["eos_token"] = content(t.eos_id);
  if (t.pad_id >= 0) cfg["pad_token"] = content(t.pad_id);
  if (!t.chat_template.empty()) cfg["chat_template"] = t.chat_template;

  // JSON text must be UTF-8; a GGUF's strings need not be. Name the first one that is not.
  std::string tokenizer_json, config_json;
  try {
    tokenizer_json = j.dump();
    config_json = cfg.dump();
  } catch (const nlohmann::json::exception&) {
    for (size_t i = 0; i < t.tokens.size(); ++i) try {
        (void)nlohmann::json(t.tokens[i]).dump();
      } catch (const nlohmann::json::exception&) {
        throw Error(source + ": tokenizer.ggml.tokens[" + std::to_string(i) + "]: not valid UTF-8");
      }
    throw Error(source +
                ": tokenizer metadata (merges, chat template or a special token): not "
                "valid UTF-8");
  }
  std::string dir = (fs::temp_directory_path() / "hone-gguf-tok-XXXXXX").string();
  if (!mkdtemp(dir.data())) throw Error(source + ": cannot create a temporary folder");
  try {
    std::ofstream(dir + "/tokenizer.json") << tokenizer_json;
    std::ofstream(dir + "/tokenizer_config.json") << config_json;
    auto tok = std::make_unique<HfTokenizer>(dir + "/tokenizer.json");
    fs::remove_all(dir);
    return tok;
  } catch (...) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    throw;
  }
}

}  // namespace

std::unique_ptr<Tokenizer> tokenizer_for_model(const std::string& model_path,
                                               const std::string& tokenizer_path) {
  const std::string found = resolve_tokenizer(model_path, tokenizer_path);
  if (!found.empty()) return load_tokenizer(found);
  if (is_gguf(model_path)) {
    GgufTokenizerData t = read_gguf_tokenizer(model_path);
    if (t.model == "gpt2") return hf_tokenizer_from_gguf(t, model_path);
    if (t.model != "llama" || t.scores.size() != t.tokens.size() || t.bos_id != 1 || t.eos_id != 2)
      throw Error(model_path + ": its embedded \"" + t.model +
                  "\" tokenizer cannot be used yet (pass --tokenizer PATH)");
    std::vector<std::string> pieces;
    for (const auto& p : t.tokens) pieces.push_back(replace_all(p, "\xe2\x96\x81", " "));
    return std::make_unique<Llama2cTokenizer>(std::move(pieces), t.scores, model_path);
  }
  throw Error(model_path + ": no tokenizer found beside the model (pass --tokenizer PATH)");
}

std::string model_tokenizer_source(const std::string& model_path,
                                   const std::string& tokenizer_path) {
  const std::string found = resolve_tokenizer(model_path, tokenizer_path);
  if (!found.empty()) return found;
  if (is_gguf(model_path)) return model_path;
  return "";
}

std::string chat_template_for_model(const std::string& name, const std::string& tokenizer_source) {
  if (!name.empty() || !is_gguf(tokenizer_source))
    return resolve_chat_template(name, tokenizer_source);
  const std::string t = read_gguf_tokenizer(tokenizer_source).chat_template;
  if (t.empty())
    throw Error(tokenizer_source +
                ": the GGUF has no chat template (no tokenizer.chat_template); set "
                "data.chat_template to a built-in template: llama3, chatml, llama2 or mistral");
  check_chat_template(t, tokenizer_source + ": tokenizer.chat_template");
  return t;
}

GgufTokenizerData gguf_tokenizer_for_model(const std::string& model_path,
                                           const std::string& tokenizer_path,
                                           const ModelConfig& config) {
  const std::string found = resolve_tokenizer(model_path, tokenizer_path);
  if (found.empty()) {
    if (is_gguf(model_path)) return read_gguf_tokenizer(model_path);
    throw Error(model_path + ": no tokenizer found beside the model (pass --tokenizer PATH)");
  }
  if (fs::is_directory(found) || fs::path(found).extension() == ".json")
    return from_tokenizer_json(find_hf_tokenizer_json(found), config);
  return from_llama2c(found);
}

}  // namespace hone
