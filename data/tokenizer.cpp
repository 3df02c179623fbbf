#include "data/tokenizer.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "autograd/error.h"
#include "data/hf_tokenizer.h"
#include "data/llama2c_tokenizer.h"

namespace hone {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  // A model folder: its tokenizer.json.
  if (std::filesystem::is_directory(path)) {
    const std::string json = find_hf_tokenizer_json(path);
    if (json.empty()) throw Error(path + ": folder has no tokenizer.json");
    return std::make_unique<HfTokenizer>(json);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open tokenizer file");
  char head[4] = {0, 0, 0, 0};
  in.read(head, 4);
  const std::streamsize got = in.gcount();

  // JSON (tokenizer.json) starts with '{' after optional whitespace.
  for (std::streamsize i = 0; i < got; ++i) {
    if (head[i] == ' ' || head[i] == '\n' || head[i] == '\r' || head[i] == '\t') continue;
    if (head[i] == '{') {
      return std::make_unique<HfTokenizer>(path);
    }
    break;
  }
  // llama2.c: a small positive int32 max_token_length first; the reader checks the rest.
  if (got == 4) {
    int32_t max_len;
    std::memcpy(&max_len, head, 4);
    if (max_len > 0 && max_len <= (1 << 16)) return std::make_unique<Llama2cTokenizer>(path);
  }
  throw Error(
      path +
      ": unrecognised tokenizer format (expected a tokenizer.json or a llama2.c tokenizer.bin)");
}

std::string find_model_tokenizer(const std::string& model_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p(model_path);
  fs::path dir = fs::is_directory(p, ec) ? p : p.parent_path();
  if (dir.empty()) dir = ".";
  for (const char* name : {"tokenizer.json", "tokenizer.bin", "tok512.bin"})
    if (fs::is_regular_file(dir / name, ec)) return (dir / name).string();
  return "";
}

}  // namespace hone
