#include "data/llama2c_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <queue>

#include "autograd/error.h"

namespace hone {

namespace {

// Largest max_token_length we accept; real vocabularies use < 100, so more means a wrong file.
constexpr int32_t kMaxTokenLengthLimit = 1 << 16;

// run.c starts its best score at -1e10, so pairs scoring at or below it never merge.
constexpr float kMergeFloor = -1e10f;

// Byte value of a "<0xNN>" piece, or -1.
int parse_byte_piece(std::string_view p) {
  if (p.size() != 6 || p[0] != '<' || p[1] != '0' || p[2] != 'x' || p[5] != '>') return -1;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = hex(p[3]);
  int lo = hex(p[4]);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

}  // namespace

Llama2cTokenizer::Llama2cTokenizer(const std::string& path, int32_t vocab_size) : path_(path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open tokenizer file");
  in.seekg(0, std::ios::end);
  const int64_t size = static_cast<int64_t>(in.tellg());
  in.seekg(0, std::ios::beg);
  std::string buf(static_cast<size_t>(size), '\0');
  if (size > 0 && !in.read(buf.data(), size)) throw Error(path + ": read failed");

  int64_t off = 0;
  auto read_i32 = [&](const char* what, int64_t index) {
    if (off + 4 > size) {
      throw Error(path + ": truncated at offset " + std::to_string(off) + " reading " + what +
                  (index >= 0 ? " of token " + std::to_string(index) : std::string()) +
                  " (file has " + std::to_string(size) + " bytes)");
    }
    int32_t v;
    std::memcpy(&v, buf.data() + off, 4);
    off += 4;
    return v;
  };

  max_token_length_ = read_i32("max_token_length", -1);
  if (max_token_length_ <= 0 || max_token_length_ > kMaxTokenLengthLimit) {
    throw Error(path + ": max_token_length " + std::to_string(max_token_length_) +
                " out of range (1.." + std::to_string(kMaxTokenLengthLimit) +
                "); not a llama2.c tokenizer file?");
  }
  for (int64_t i = 0; vocab_size < 0 ? off < size : i < vocab_size; ++i) {
    int32_t bits = read_i32("score", i);
    float s;
    std::memcpy(&s, &bits, 4);
    int32_t len = read_i32("length", i);
    if (len <= 0 || len > max_token_length_) {
      throw Error(path + ": token " + std::to_string(i) + " at offset " + std::to_string(off - 4) +
                  ": length " + std::to_string(len) + " outside 1..max_token_length (" +
                  std::to_string(max_token_length_) + ")");
    }
    if (off + len > size) {
      throw Error(path + ": truncated at offset " + std::to_string(off) + " reading the " +
                  std::to_string(len) + " bytes of token " + std::to_string(i) + " (file has " +
                  std::to_string(size) + " bytes)");
    }
    pieces_.emplace_back(buf.data() + off, static_cast<size_t>(len));
    scores_.push_back(s);
    off += len;
  }
  if (off != size) {
    throw Error(path + ": " + std::to_string(size - off) + " trailing bytes after " +
                std::to_string(pieces_.size()) + " tokens");
  }
  if (pieces_.size() < 3) {
    throw Error(path + ": only " + std::to_string(pieces_.size()) +
                " tokens; need at least <unk>, BOS and EOS");
  }

  build_index();
}

Llama2cTokenizer::Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores,
                                   std::string source)
    : path_(std::move(source)), pieces_(std::move(pieces)), scores_(std::move(scores)) {
  if (pieces_.size() != scores_.size())
    throw Error(path_ + ": " + std::to_string(pieces_.size()) + " tokens but " +
                std::to_string(scores_.size()) + " scores");
  if (pieces_.size() < 3)
    throw Error(path_ + ": only " + std::to_string(pieces_.size()) +
                " tokens; need at least <unk>, BOS and EOS");
  for (const auto& p : pieces_)
    max_token_length_ = std::max(max_token_length_, static_cast<int32_t>(p.size()));
  build_index();
}

void Llama2cTokenizer::build_index() {
  ids_.reserve(pieces_.size());
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  for (int32_t id = 0; id < static_cast<int32_t>(pieces_.size()); ++id) {
    ids_.emplace(pieces_[id], id);  // keeps the first id of a duplicated piece
    int b = parse_byte_piece(pieces_[id]);
    if (b >= 0 && byte_ids_[b] < 0) byte_ids_[b] = id;
  }
}

void Llama2cTokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    throw Error(path_ + ": token id " + std::to_string(id) + " out of range (vocabulary has " +
                std::to_string(vocab_size()) + " tokens)");
  }
}

const std::string& Llama2cTokenizer::piece(int32_t id) const {
  check_id(id);
  return pieces_[id];
}

float Llama2cTokenizer::score(int32_t id) const {
  check_id(id);
  return scores_[id];
}

int32_t Llama2cTokenizer::lookup(std::string_view p) const {
  auto it = ids_.find(p);
  return it == ids_.end() ? -1 : it->second;
}

std::vector<int32_t> Llama2cTokenizer::encode(const std::string& text, bool add_bos,
                                              bool add_eos) const {
  // Stage 1: codepoints (or their bytes). run.c pushes the dummy-prefix token for " " first;
  // " " is one codepoint, so scanning " " + text does the same.
  std::vector<int32_t> toks;
  toks.reserve(text.size() + 1);
  if (!text.empty()) {
    const std::string s = " " + text;
    size_t i = 0;
    while (i < s.size()) {
      // A codepoint is a lead byte plus continuation bytes (10xxxxxx), at most 4 bytes in all;
      // like run.c, malformed UTF-8 just falls through to bytes.
      size_t j = i + 1;
      while (j < s.size() && j - i < 4 && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;
      int32_t id = lookup(std::string_view(s).substr(i, j - i));
      if (id >= 0) {
        toks.push_back(id);
      } else {
        for (size_t k = i; k < j; ++k) {
          unsigned char b = static_cast<unsigned char>(s[k]);
          if (byte_ids_[b] < 0) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "<0x%02X>", b);
            throw Error(path_ + ": cannot encode byte 0x" + std::string(hex + 3, 2) +
                        ": the vocabulary has no " + hex + " token");
          }
          toks.push_back(byte_ids_[b]);
        }
      }
      i = j;
    }
  }

  // Stage 2: BPE merges. run.c rescans every pair after each merge (quadratic); a max-heap of
  // candidate pairs gives the same choices: the highest score, then the leftmost pair. Tokens
  // live in a linked list whose node order is text order, so node index breaks ties.
  const int32_t n = static_cast<int32_t>(toks.size());
  std::vector<int32_t> next(n), prev(n);
  for (int32_t i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  struct Cand {
    float score;
    int32_t left, right;        // node indices
    int32_t left_id, right_id;  // ids when pushed; a change makes the candidate stale
    int32_t merged;
  };
  auto worse = [](const Cand& a, const Cand& b) {
    return a.score != b.score ? a.score < b.score : a.left > b.left;
  };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
  std::string joined;
  auto push_pair = [&](int32_t l) {
    if (l < 0 || next[l] < 0) return;
    int32_t r = next[l];
    joined.assign(pieces_[toks[l]]);
    joined += pieces_[toks[r]];
    auto it = ids_.find(joined);
    if (it == ids_.end() || !(scores_[it->second] > kMergeFloor)) return;
    heap.push({scores_[it->second], l, r, toks[l], toks[r], it->second});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
  std::vector<char> alive(n, 1);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right || toks[c.left] != c.left_id ||
        toks[c.right] != c.right_id) {
      continue;
    }
    toks[c.left] = c.merged;
    alive[c.right] = 0;
    next[c.left] = next[c.right];
    if (next[c.left] >= 0) prev[next[c.left]] = c.left;
    push_pair(prev[c.left]);
    push_pair(c.left);
  }

  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(n) + 2);
  if (add_bos) out.push_back(bos_id());
  for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = next[i]) out.push_back(toks[i]);
  if (add_eos) out.push_back(eos_id());
  return out;
}

std::string Llama2cTokenizer::decode_token(int32_t prev, int32_t id) const {
  check_id(id);
  std::string_view p = pieces_[id];
  if (prev == bos_id() && !p.empty() && p[0] == ' ') p.remove_prefix(1);
  int b = parse_byte_piece(p);
  if (b >= 0) return std::string(1, static_cast<char>(b));
  return std::string(p);
}

std::string Llama2cTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  int32_t prev = bos_id();  // a sequence starts as if after BOS: drops the dummy-prefix space
  for (int32_t id : ids) {
    if (id == bos_id() || id == eos_id()) {
      check_id(id);
      prev = id;
      continue;
    }
    out += decode_token(prev, id);
    prev = id;
  }
  return out;
}

}  // namespace hone
