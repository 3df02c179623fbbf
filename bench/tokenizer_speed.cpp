// Tokenizer throughput: encodes a whole text file (default: tiny Shakespeare) with a Hugging
// Face tokenizer.json, once right after loading (cold word cache) and then `repeats` more times
// (warm), and prints one JSON line with MB/s and a digest of the ids so bench/tokenizer.sh can
// check that hone and the JS reference produced the same tokens.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "data/hf_tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOKENIZER_JSON TEXT_FILE [REPEATS]\n", argv[0]);
    return 2;
  }
  const int repeats = argc > 3 ? std::stoi(argv[3]) : 5;
  std::ifstream in(argv[2], std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  using clk = std::chrono::steady_clock;
  auto t0 = clk::now();
  hone::HfTokenizer tok(argv[1]);
  const double load_s = std::chrono::duration<double>(clk::now() - t0).count();
  double cold = 0, best = 1e30;
  std::vector<int32_t> ids;
  for (int r = 0; r <= repeats; ++r) {
    t0 = clk::now();
    ids = tok.encode(text, false, false);
    const double s = std::chrono::duration<double>(clk::now() - t0).count();
    if (r == 0) {
      cold = s;
    } else if (s < best) {
      best = s;
    }
  }
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int32_t id : ids) {
    for (int k = 0; k < 4; ++k) {
      h ^= (static_cast<uint32_t>(id) >> (8 * k)) & 0xFF;
      h *= 0x100000001b3ULL;
    }
  }
  const double mb = static_cast<double>(text.size()) / 1e6;
  std::printf(
      "{\"impl\": \"hone\", \"bytes\": %zu, \"ids\": %zu, \"fnv\": \"%016llx\", \"load_s\": %.3f, "
      "\"cold_mb_s\": %.2f, \"warm_mb_s\": %.2f}\n",
      text.size(), ids.size(), static_cast<unsigned long long>(h), load_s, mb / cold,
      repeats > 0 ? mb / best : 0.0);
  return 0;
}
