// Shared by the Hugging Face tokenizer tests: one loaded tokenizer per name (loading the big
// JSON files takes a while), and the JSONL reader.
#pragma once

#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common.h"
#include "data/hf_tokenizer.h"

namespace hone::test {

inline const HfTokenizer& hf_tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<HfTokenizer>> cache;
  auto& t = cache[name];
  if (!t) t = std::make_unique<HfTokenizer>(shared_file("tokenizers/" + name + "/tokenizer.json"));
  return *t;
}

inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

}  // namespace hone::test
