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
#include "recipes/model_tokenizer_gguf.h"

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

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.flush();
  if (!out) throw Error(path.string() + ": cannot write");
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

// A GGUF vocabulary as a Hugging Face tokenizer: the tokenizer.json it stands for is written to
// a private temporary folder, loaded, and removed.
std::unique_ptr<Tokenizer> hf_tokenizer_from_gguf(const GgufTokenizerData& t,
                                                  const std::string& source) {
  const HfTokenizerFiles files = hf_files_from_gguf(t, source);
  std::string dir = (fs::temp_directory_path() / "hone-gguf-tok-XXXXXX").string();
  if (!mkdtemp(dir.data())) throw Error(source + ": cannot create a temporary folder");
  try {
    write_text(dir + "/tokenizer.json", files.tokenizer_json);
    write_text(dir + "/tokenizer_config.json", files.tokenizer_config_json);
    auto tok = std::make_unique<HfTokenizer>(dir + "/tokenizer.json");
    fs::remove_all(dir);
    return tok;
  } catch (...) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    throw;
  }
}

// A GGUF file's embedded vocabulary: "llama" with llama2.c's ids (unk 0, BOS 1, EOS 2) through
// the run.c encoder, as llama.cpp merges by score; other "llama" and "gpt2" vocabularies as the
// tokenizer.json they stand for.
std::unique_ptr<Tokenizer> tokenizer_from_gguf(const std::string& path) {
  GgufTokenizerData t = read_gguf_tokenizer(path);
  if (t.model == "llama" && t.scores.size() == t.tokens.size() && t.bos_id == 1 && t.eos_id == 2 &&
      t.add_bos.value_or(true) && !t.add_eos.value_or(false)) {
    std::vector<std::string> pieces;
    for (const auto& p : t.tokens) pieces.push_back(replace_all(p, "\xe2\x96\x81", " "));
    return std::make_unique<Llama2cTokenizer>(std::move(pieces), t.scores, path);
  }
  return hf_tokenizer_from_gguf(t, path);
}

}  // namespace

std::unique_ptr<Tokenizer> open_tokenizer(const std::string& path) {
  if (!fs::is_directory(path) && is_gguf(path)) return tokenizer_from_gguf(path);
  return load_tokenizer(path);
}

std::unique_ptr<Tokenizer> tokenizer_for_model(const std::string& model_path,
                                               const std::string& tokenizer_path) {
  const std::string found = resolve_tokenizer(model_path, tokenizer_path);
  if (!found.empty()) return open_tokenizer(found);
  if (is_gguf(model_path)) return tokenizer_from_gguf(model_path);
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
  if (!fs::is_directory(found) && is_gguf(found)) {
    GgufTokenizerData t = read_gguf_tokenizer(found);
    // Its vocabulary may be shorter than the embedding: pad as a tokenizer.json's would be.
    for (auto i = static_cast<int64_t>(t.tokens.size()); i < config.vocab_size; ++i) {
      t.tokens.push_back("[PAD" + std::to_string(i) + "]");
      if (!t.scores.empty()) t.scores.push_back(0.0f);
      if (!t.token_types.empty()) t.token_types.push_back(5);
    }
    return t;
  }
  if (fs::is_directory(found) || fs::path(found).extension() == ".json")
    return gguf_tokenizer_from_json(find_hf_tokenizer_json(found), config);
  return from_llama2c(found);
}

bool write_hf_tokenizer_for_model(const std::string& model_path, const std::string& dir) {
  const std::string found = model_tokenizer_source(model_path, "");
  if (found.empty()) return false;
  GgufTokenizerData t;
  if (!fs::is_directory(found) && is_gguf(found)) {
    t = read_gguf_tokenizer(found);
  } else if (fs::is_directory(found) || fs::path(found).extension() == ".json") {
    const std::string json = find_hf_tokenizer_json(found);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
      const fs::path src = fs::path(json).parent_path() / f;
      if (fs::is_regular_file(src)) fs::copy_file(src, fs::path(dir) / f);
    }
    return true;
  } else {
    t = from_llama2c(found);
  }
  const HfTokenizerFiles files = hf_files_from_gguf(t, found);
  write_text(fs::path(dir) / "tokenizer.json", files.tokenizer_json);
  write_text(fs::path(dir) / "tokenizer_config.json", files.tokenizer_config_json);
  return true;
}

}  // namespace hone
