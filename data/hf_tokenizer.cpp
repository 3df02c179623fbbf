#include "data/hf_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>

#include "autograd/error.h"
#include "data/hf_text.h"

namespace hone {

using json = nlohmann::json;
using hftext::Regex;

namespace {

struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StrMap = std::unordered_map<std::string, V, SvHash, std::equal_to<>>;

// GPT-2's byte <-> unicode table: printable bytes map to themselves, the rest to U+0100.. .
std::vector<uint32_t> byte_to_unicode() {
  std::vector<uint32_t> t(256, 0);
  uint32_t n = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    t[b] = keep ? b : 256 + n++;
  }
  return t;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out.append(to);
  }
  if (pos == 0) return;
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

// transformers.js clean_up_tokenization (HF's clean_up_tokenization_spaces).
std::string clean_up(std::string s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [a, b] : kRules) replace_all(s, a, b);
  return s;
}

std::string token_content(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content")) return j["content"].get<std::string>();
  return {};
}

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
}

}  // namespace

// ---- the pipeline pieces -------------------------------------------------------------------

struct Normalizer {
  enum Kind { kNFC, kPrepend, kReplace, kLowercase, kSequence } kind;
  std::string a, b;           // Prepend: a; Replace: a -> b (string pattern)
  std::unique_ptr<Regex> re;  // Replace with a regex pattern
  std::vector<Normalizer> children;

  void apply(std::string& s) const {
    switch (kind) {
      case kNFC:
        s = hftext::nfc(s);
        break;
      case kPrepend:
        if (!s.empty()) s.insert(0, a);
        break;
      case kReplace:
        if (re) {
          std::vector<std::pair<uint32_t, uint32_t>> m;
          re->find_all(s, m);
          std::string out;
          size_t pos = 0;
          for (auto [x, y] : m) {
            out.append(s, pos, x - pos);
            out += b;
            pos = y;
          }
          out.append(s, pos, std::string::npos);
          s.swap(out);
        } else {
          replace_all(s, a, b);
        }
        break;
      case kLowercase:
        for (char& c : s) {
          if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        }
        break;
      case kSequence:
        for (const auto& c : children) c.apply(s);
        break;
    }
  }
};

// Pieces of text during pre-tokenization: views into the section text or into `store`.
struct Pieces {
  std::vector<std::string_view> v;
  std::vector<std::unique_ptr<std::string>> store;
  std::string_view keep(std::string s) {
    store.push_back(std::make_unique<std::string>(std::move(s)));
    return *store.back();
  }
};

struct PreTokenizer {
  enum Kind { kSplit, kByteLevel, kMetaspace, kSequence } kind;
  std::unique_ptr<Regex> re;
  bool removed = false;           // Split behavior "Removed" (else "Isolated")
  bool add_prefix_space = false;  // ByteLevel
  std::string replacement;        // Metaspace
  std::string prepend_scheme;     // Metaspace: always / first / never
  bool split = true;              // Metaspace
  std::vector<PreTokenizer> children;

  void apply(Pieces& p, std::vector<std::pair<uint32_t, uint32_t>>& m) const {
    std::vector<std::string_view> out;
    switch (kind) {
      case kSequence:
        for (const auto& c : children) c.apply(p, m);
        return;
      case kSplit:
      case kByteLevel:
        for (std::string_view s : p.v) {
          if (kind == kByteLevel && add_prefix_space && (s.empty() || s[0] != ' ')) {
            s = p.keep(" " + std::string(s));
          }
          if (!re) {
            out.push_back(s);
            continue;
          }
          m.clear();
          re->find_all(s, m);
          size_t pos = 0;
          for (auto [x, y] : m) {
            if (!removed && x > pos) out.push_back(s.substr(pos, x - pos));
            if (!removed) out.push_back(s.substr(x, y - x));
            pos = y;
          }
          if (pos < s.size()) out.push_back(s.substr(pos));
        }
        break;
      case kMetaspace:
        for (size_t i = 0; i < p.v.size(); ++i) {
          std::string t(p.v[i]);
          replace_all(t, " ", replacement);
          const bool pre = prepend_scheme == "always" || (prepend_scheme == "first" && i == 0);
          if (pre && t.compare(0, replacement.size(), replacement) != 0) t.insert(0, replacement);
          std::string_view s = p.keep(std::move(t));
          if (!split) {
            out.push_back(s);
            continue;
          }
          // Split before each replacement character (MergedWithNext).
          size_t start = 0;
          for (size_t hit = s.find(replacement, 1); hit != std::string_view::npos;
               hit = s.find(replacement, hit + replacement.size())) {
            if (hit > start) out.push_back(s.substr(start, hit - start));
            start = hit;
          }
          if (start < s.size()) out.push_back(s.substr(start));
        }
        break;
    }
    p.v.swap(out);
  }
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

  Normalizer parse_normalizer(const json& j);
  PreTokenizer parse_pre(const json& j);
  DecodeStep parse_decoder(const json& j);
  void load(const std::string& json_path);

  void encode_section(std::string_view text, std::vector<int32_t>& ids) const;
  void bpe(std::string_view word, std::vector<int32_t>& ids) const;
  void bpe_uncached(std::string_view word, std::vector<int32_t>& ids) const;
  void run_decoder(const DecodeStep& d, std::vector<std::string>& toks, bool at_start,
                   bool raw) const;
  std::string decode_ids(const std::vector<int32_t>& ids, bool skip_special, bool at_start,
                         bool raw) const;
};

Normalizer HfTokenizer::Impl::parse_normalizer(const json& j) {
  const std::string type = j.value("type", "");
  Normalizer n{};
  if (type == "NFC") {
    n.kind = Normalizer::kNFC;
  } else if (type == "Prepend") {
    n.kind = Normalizer::kPrepend;
    n.a = j.at("prepend").get<std::string>();
  } else if (type == "Replace") {
    n.kind = Normalizer::kReplace;
    const auto& pat = j.at("pattern");
    if (pat.contains("String")) {
      n.a = pat["String"].get<std::string>();
    } else {
      n.re = std::make_unique<Regex>(pat.at("Regex").get<std::string>());
    }
    n.b = j.at("content").get<std::string>();
  } else if (type == "Lowercase") {
    n.kind = Normalizer::kLowercase;
  } else if (type == "Sequence") {
    n.kind = Normalizer::kSequence;
    for (const auto& c : j.at("normalizers")) n.children.push_back(parse_normalizer(c));
  } else {
    throw Error(path + ": normalizer type \"" + type + "\" not supported");
  }
  return n;
}

// GPT-2's pre-tokenizer regex (ByteLevel with use_regex).
constexpr const char* kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

PreTokenizer HfTokenizer::Impl::parse_pre(const json& j) {
  const std::string type = j.value("type", "");
  PreTokenizer p{};
  if (type == "Split") {
    p.kind = PreTokenizer::kSplit;
    const auto& pat = j.at("pattern");
    std::string re;
    if (pat.contains("Regex")) {
      re = pat["Regex"].get<std::string>();
    } else {
      // A literal string: quote it.
      for (char c : pat.at("String").get<std::string>()) {
        if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) re += '\\';
        re += c;
      }
    }
    const std::string behavior = j.value("behavior", "Isolated");
    if (j.value("invert", false) || (behavior != "Isolated" && behavior != "Removed")) {
      throw Error(path + ": Split pre-tokenizer with behavior " + behavior +
                  (j.value("invert", false) ? " and invert" : "") + " not supported");
    }
    p.removed = behavior == "Removed";
    p.re = std::make_unique<Regex>(re);
  } else if (type == "ByteLevel") {
    p.kind = PreTokenizer::kByteLevel;
    p.add_prefix_space = j.value("add_prefix_space", false);
    if (j.value("use_regex", true)) p.re = std::make_unique<Regex>(kGpt2Regex);
    byte_level = true;
  } else if (type == "Metaspace") {
    p.kind = PreTokenizer::kMetaspace;
    p.replacement = j.value("replacement", "\xE2\x96\x81");
    p.prepend_scheme =
        j.value("prepend_scheme", j.value("add_prefix_space", true) ? "always" : "never");
    p.split = j.value("split", true);
  } else if (type == "Sequence") {
    p.kind = PreTokenizer::kSequence;
    for (const auto& c : j.at("pretokenizers")) p.children.push_back(parse_pre(c));
  } else {
    throw Error(path + ": pre_tokenizer type \"" + type + "\" not supported");
  }
  return p;
}

DecodeStep HfTokenizer::Impl::parse_decoder(const json& j) {
  const std::string type = j.value("type", "");
  DecodeStep d{};
  if (type == "ByteLevel") {
    d.kind = DecodeStep::kByteLevel;
  } else if (type == "ByteFallback") {
    d.kind = DecodeStep::kByteFallback;
  } else if (type == "Fuse") {
    d.kind = DecodeStep::kFuse;
  } else if (type == "Strip") {
    d.kind = DecodeStep::kStrip;
    d.a = j.at("content").get<std::string>();
    d.start = j.value("start", 0);
    d.stop = j.value("stop", 0);
  } else if (type == "Replace") {
    d.kind = DecodeStep::kReplace;
    const auto& pat = j.at("pattern");
    if (!pat.contains("String")) throw Error(path + ": Replace decoder with a regex not supported");
    d.a = pat["String"].get<std::string>();
    d.b = j.at("content").get<std::string>();
  } else if (type == "Metaspace") {
    d.kind = DecodeStep::kMetaspace;
    d.a = j.value("replacement", "\xE2\x96\x81");
    d.prefix_space =
        j.value("add_prefix_space", true) && j.value("prepend_scheme", "always") != "never";
  } else if (type == "Sequence") {
    d.kind = DecodeStep::kSequence;
    for (const auto& c : j.at("decoders")) d.children.push_back(parse_decoder(c));
  } else {
    throw Error(path + ": decoder type \"" + type + "\" not supported");
  }
  return d;
}

void HfTokenizer::Impl::load(const std::string& json_path) {
  path = json_path;
  const json j = read_json(json_path);
  const json& m = j.at("model");
  if (m.value("type", "BPE") != "BPE") {
    throw Error(path + ": model type \"" + m.value("type", "") + "\" not supported (BPE only)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.contains(key) && m[key].is_string() && !m[key].get<std::string>().empty()) {
      throw Error(path + ": model." + key + " not supported");
    }
  }
  if (m.contains("dropout") && m["dropout"].is_number() && m["dropout"].get<double>() > 0) {
    throw Error(path + ": BPE dropout not supported");
  }
  int32_t max_id = -1;
  for (const auto& [tok, id] : m.at("vocab").items()) max_id = std::max(max_id, id.get<int32_t>());
  for (const auto& a : j.value("added_tokens", json::array())) {
    max_id = std::max(max_id, a.at("id").get<int32_t>());
  }
  tokens.assign(static_cast<size_t>(max_id + 1), std::string());
  vocab.reserve(static_cast<size_t>(max_id + 1));
  for (const auto& [tok, idj] : m.at("vocab").items()) {
    const auto id = idj.get<int32_t>();
    tokens[static_cast<size_t>(id)] = tok;
    vocab.emplace(tok, id);
  }
  ignore_merges = m.value("ignore_merges", false);
  byte_fallback = m.value("byte_fallback", false);
  fuse_unk = m.value("fuse_unk", false);
  if (m.contains("unk_token") && m["unk_token"].is_string())
    unk_id = id_of(m["unk_token"].get<std::string>());

  const json& mj = m.at("merges");
  merges.reserve(mj.size());
  int32_t rank = 0;
  for (const auto& e : mj) {
    std::string a, b;
    if (e.is_string()) {
      const auto s = e.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) throw Error(path + ": bad merge \"" + s + "\"");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {
      a = e.at(0).get<std::string>();
      b = e.at(1).get<std::string>();
    }
    const int32_t ia = id_of(a), ib = id_of(b), in = id_of(a + b);
    if (ia < 0 || ib < 0 || in < 0) {
      throw Error(path + ": merge \"" + a + " " + b + "\" uses a token missing from the vocab");
    }
    const uint64_t key =
        (static_cast<uint64_t>(static_cast<uint32_t>(ia)) << 32) | static_cast<uint32_t>(ib);
    merges.emplace(key, std::make_pair(rank++, in));  // first (lowest rank) wins
  }

  for (int b = 0; b < 256; ++b) {
    static const char* kHex = "0123456789ABCDEF";
    const char name[7] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', 0};
    byte_token[b] = id_of(name);
  }

  for (const auto& a : j.value("added_tokens", json::array())) {
    Added t{a.at("content").get<std::string>(), a.at("id").get<int32_t>(),
            a.value("special", false), a.value("lstrip", false), a.value("rstrip", false)};
    tokens[static_cast<size_t>(t.id)] = t.content;
    vocab[t.content] = t.id;
    if (!t.content.empty()) added.push_back(std::move(t));
  }
  special_flag.assign(tokens.size(), 0);
  added_flag.assign(tokens.size(), 0);
  added_by_first.assign(256, {});
  for (size_t i = 0; i < added.size(); ++i) {
    special_flag[static_cast<size_t>(added[i].id)] = added[i].special;
    added_flag[static_cast<size_t>(added[i].id)] = 1;
    added_by_first[static_cast<unsigned char>(added[i].content[0])].push_back(
        static_cast<int32_t>(i));
  }
  for (auto& v : added_by_first) {
    std::stable_sort(v.begin(), v.end(), [&](int32_t x, int32_t y) {
      return added[static_cast<size_t>(x)].content.size() >
             added[static_cast<size_t>(y)].content.size();
    });
  }

  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    normalizer = std::make_unique<Normalizer>(parse_normalizer(j["normalizer"]));
  }
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null()) {
    pre = std::make_unique<PreTokenizer>(parse_pre(j["pre_tokenizer"]));
  }
  if (j.contains("decoder") && !j["decoder"].is_null()) {
    decoder = std::make_unique<DecodeStep>(parse_decoder(j["decoder"]));
  }

  const auto table = byte_to_unicode();
  byte_level_char.resize(256);
  for (int b = 0; b < 256; ++b) {
    hftext::append_utf8(byte_level_char[static_cast<size_t>(b)], table[static_cast<size_t>(b)]);
    byte_level_id[b] = id_of(byte_level_char[static_cast<size_t>(b)]);
    unicode_to_byte[table[static_cast<size_t>(b)]] = static_cast<uint8_t>(b);
  }

  // Post-processor: which special tokens come before / after the text.
  std::function<void(const json&)> post = [&](const json& pp) {
    const std::string type = pp.value("type", "");
    if (type == "TemplateProcessing") {
      bool seen_a = false;
      for (const auto& piece : pp.at("single")) {
        if (piece.contains("Sequence")) {
          seen_a = true;
          continue;
        }
        const auto name = piece.at("SpecialToken").at("id").get<std::string>();
        const auto& st = pp.at("special_tokens").at(name);
        for (const auto& id : st.at("ids")) (seen_a ? suffix : prefix).push_back(id.get<int32_t>());
      }
    } else if (type == "RobertaProcessing" || type == "BertProcessing") {
      prefix.push_back(pp.at("cls").at(1).get<int32_t>());
      suffix.push_back(pp.at("sep").at(1).get<int32_t>());
    } else if (type == "Sequence") {
      for (const auto& c : pp.at("processors")) post(c);
    } else if (type != "ByteLevel") {
      throw Error(path + ": post_processor type \"" + type + "\" not supported");
    }
  };
  const bool has_post = j.contains("post_processor") && !j["post_processor"].is_null();
  if (has_post) post(j["post_processor"]);
  const bool template_tokens = !prefix.empty() || !suffix.empty();

  // tokenizer_config.json beside it: bos/eos/pad, add_bos_token/add_eos_token, clean-up.
  const auto cfg_path = std::filesystem::path(json_path).parent_path() / "tokenizer_config.json";
  json cfg = json::object();
  if (std::filesystem::exists(cfg_path)) cfg = read_json(cfg_path.string());
  auto cfg_id = [&](const char* key) {
    if (!cfg.contains(key)) return -1;
    const std::string t = token_content(cfg[key]);
    return t.empty() ? -1 : id_of(t);
  };
  bos = cfg_id("bos_token");
  eos = cfg_id("eos_token");
  pad = cfg_id("pad_token");
  if (bos < 0 && prefix.size() == 1) bos = prefix[0];
  if (eos < 0 && suffix.size() == 1) eos = suffix[0];
  if (!template_tokens) {
    if (cfg.value("add_bos_token", false) && bos >= 0) prefix.push_back(bos);
    if (cfg.value("add_eos_token", false) && eos >= 0) suffix.push_back(eos);
  }
  const auto& cu =
      cfg.contains("clean_up_tokenization_spaces") ? cfg["clean_up_tokenization_spaces"] : json();
  clean_up = cu.is_boolean() ? cu.get<bool>() : true;  // transformers.js default
}

void HfTokenizer::Impl::bpe_uncached(std::string_view word, std::vector<int32_t>& ids) const {
  struct Sym {
    int32_t id, prev, next;
  };
  thread_local std::vector<Sym> syms;
  thread_local std::string mapped;
  syms.clear();

  if (byte_level) {
    mapped.clear();
    for (char c : word) mapped += byte_level_char[static_cast<unsigned char>(c)];
    if (ignore_merges) {
      if (const int32_t id = id_of(mapped); id >= 0) {
        ids.push_back(id);
        return;
      }
    }
    for (char c : word) {
      const int32_t id = byte_level_id[static_cast<unsigned char>(c)];
      if (id < 0) throw Error(path + ": byte-level vocab lacks a byte");
      syms.push_back(
          {id, static_cast<int32_t>(syms.size()) - 1, static_cast<int32_t>(syms.size()) + 1});
    }
  } else {
    if (ignore_merges) {
      if (const int32_t id = id_of(word); id >= 0) {
        ids.push_back(id);
        return;
      }
    }
    bool last_unk = false;
    for (size_t i = 0; i < word.size();) {
      const size_t n =
          std::min(hftext::utf8_len(static_cast<unsigned char>(word[i])), word.size() - i);
      const int32_t id = id_of(word.substr(i, n));
      auto push = [&](int32_t v) {
        syms.push_back(
            {v, static_cast<int32_t>(syms.size()) - 1, static_cast<int32_t>(syms.size()) + 1});
      };
      if (id >= 0) {
        push(id);
        last_unk = false;
      } else if (byte_fallback &&
                 std::all_of(word.begin() + static_cast<std::ptrdiff_t>(i),
                             word.begin() + static_cast<std::ptrdiff_t>(i + n), [&](char c) {
                               return byte_token[static_cast<unsigned char>(c)] >= 0;
                             })) {
        for (size_t k = i; k < i + n; ++k) push(byte_token[static_cast<unsigned char>(word[k])]);
        last_unk = false;
      } else if (unk_id >= 0) {
        if (!(fuse_unk && last_unk)) push(unk_id);
        last_unk = true;
      } else {
        throw Error(path + ": text has a character outside the vocabulary and no unk token");
      }
      i += n;
    }
  }
  if (syms.empty()) return;
  syms.back().next = -1;

  struct Cand {
    int32_t rank, pos, new_id;
    bool operator<(const Cand& o) const {  // max-heap: lowest rank, then leftmost, on top
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  thread_local std::vector<Cand> heap;
  heap.clear();
  auto consider = [&](int32_t pos) {
    const int32_t nx = syms[static_cast<size_t>(pos)].next;
    if (pos < 0 || nx < 0) return;
    const uint64_t key =
        (static_cast<uint64_t>(static_cast<uint32_t>(syms[static_cast<size_t>(pos)].id)) << 32) |
        static_cast<uint32_t>(syms[static_cast<size_t>(nx)].id);
    auto it = merges.find(key);
    if (it == merges.end()) return;
    heap.push_back({it->second.first, pos, it->second.second});
    std::push_heap(heap.begin(), heap.end());
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) consider(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Cand c = heap.back();
    heap.pop_back();
    Sym& s = syms[static_cast<size_t>(c.pos)];
    if (s.id < 0 || s.next < 0) continue;
    const Sym& r = syms[static_cast<size_t>(s.next)];
    const uint64_t key =
        (static_cast<uint64_t>(static_cast<uint32_t>(s.id)) << 32) | static_cast<uint32_t>(r.id);
    auto it = merges.find(key);
    if (it == merges.end() || it->second.second != c.new_id) continue;
    // Merge s and its right neighbour into s.
    const int32_t gone = s.next;
    s.id = c.new_id;
    s.next = r.next;
    if (s.next >= 0) syms[static_cast<size_t>(s.next)].prev = c.pos;
    syms[static_cast<size_t>(gone)].id = -1;
    if (s.prev >= 0) consider(s.prev);
    consider(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = syms[static_cast<size_t>(i)].next)
    ids.push_back(syms[static_cast<size_t>(i)].id);
}

void HfTokenizer::Impl::bpe(std::string_view word, std::vector<int32_t>& ids) const {
  constexpr size_t kMaxCachedWord = 128, kMaxCacheEntries = 200000;
  const bool cacheable = word.size() <= kMaxCachedWord;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu);
    auto it = cache.find(word);
    if (it != cache.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = ids.size();
  bpe_uncached(word, ids);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu);
    if (cache.size() >= kMaxCacheEntries) cache.clear();
    cache.emplace(
        std::string(word),
        std::vector<int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(start), ids.end()));
  }
}

void HfTokenizer::Impl::encode_section(std::string_view text, std::vector<int32_t>& ids) const {
  std::string normed;
  std::string_view s = text;
  if (normalizer) {
    normed.assign(text);
    normalizer->apply(normed);
    s = normed;
  }
  if (s.empty()) return;
  Pieces p;
  p.v.push_back(s);
  if (pre) {
    thread_local std::vector<std::pair<uint32_t, uint32_t>> m;
    pre->apply(p, m);
  }
  for (std::string_view w : p.v) {
    if (!w.empty()) bpe(w, ids);
  }
}

std::vector<int32_t> HfTokenizer::encode(const std::string& text_in, bool add_bos,
                                         bool add_eos) const {
  const Impl& I = *impl_;
  std::string repaired;
  std::string_view text = text_in;
  if (!hftext::is_valid_utf8(text)) {
    repaired = hftext::repair_utf8(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_bos) ids.insert(ids.end(), I.prefix.begin(), I.prefix.end());

  // Split on added tokens: leftmost, longest match.
  struct Sec {
    std::string_view text;
    int32_t added = -1;  // index into I.added
  };
  std::vector<Sec> secs;
  size_t from = 0;
  for (size_t i = 0; i < text.size();) {
    int32_t hit = -1;
    if (!I.added.empty()) {
      for (int32_t k : I.added_by_first[static_cast<unsigned char>(text[i])]) {
        const auto& c = I.added[static_cast<size_t>(k)].content;
        if (text.compare(i, c.size(), c) == 0) {
          hit = k;
          break;
        }
      }
    }
    if (hit < 0) {
      ++i;
      continue;
    }
    if (i > from) secs.push_back({text.substr(from, i - from)});
    secs.push_back({text.substr(i, I.added[static_cast<size_t>(hit)].content.size()), hit});
    i += I.added[static_cast<size_t>(hit)].content.size();
    from = i;
  }
  if (from < text.size()) secs.push_back({text.substr(from)});
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  for (size_t i = 0; i < secs.size(); ++i) {
    if (secs[i].added < 0) continue;
    const auto& a = I.added[static_cast<size_t>(secs[i].added)];
    if (a.lstrip && i > 0 && secs[i - 1].added < 0) {
      auto& t = secs[i - 1].text;
      while (!t.empty() && is_space(t.back())) t.remove_suffix(1);
    }
    if (a.rstrip && i + 1 < secs.size() && secs[i + 1].added < 0) {
      auto& t = secs[i + 1].text;
      while (!t.empty() && is_space(t.front())) t.remove_prefix(1);
    }
  }
  for (const auto& sec : secs) {
    if (sec.added >= 0) {
      ids.push_back(I.added[static_cast<size_t>(sec.added)].id);
    } else if (!sec.text.empty()) {
      I.encode_section(sec.text, ids);
    }
  }
  if (add_eos) ids.insert(ids.end(), I.suffix.begin(), I.suffix.end());
  return ids;
}

// ---- decoding ------------------------------------------------------------------------------

void HfTokenizer::Impl::run_decoder(const DecodeStep& d, std::vector<std::string>& toks,
                                    bool at_start, bool raw) const {
  switch (d.kind) {
    case DecodeStep::kSequence:
      for (const auto& c : d.children) run_decoder(c, toks, at_start, raw);
      return;
    case DecodeStep::kFuse: {
      std::string all;
      for (const auto& t : toks) all += t;
      toks.assign(1, std::move(all));
      return;
    }
    case DecodeStep::kReplace:
      for (auto& t : toks) replace_all(t, d.a, d.b);
      return;
    case DecodeStep::kStrip:
      for (auto& t : toks) {
        size_t b = 0, e = t.size();
        if (at_start) {
          for (int k = 0; k < d.start && t.compare(b, d.a.size(), d.a) == 0; ++k) b += d.a.size();
        }
        for (int k = 0;
             k < d.stop && e >= b + d.a.size() && t.compare(e - d.a.size(), d.a.size(), d.a) == 0;
             ++k) {
          e -= d.a.size();
        }
        t = t.substr(b, e - b);
      }
      return;
    case DecodeStep::kMetaspace:
      for (size_t i = 0; i < toks.size(); ++i) {
        replace_all(toks[i], d.a, " ");
        if (i == 0 && at_start && d.prefix_space && !toks[i].empty() && toks[i][0] == ' ')
          toks[i].erase(0, 1);
      }
      return;
    case DecodeStep::kByteFallback: {
      std::vector<std::string> out;
      std::string bytes;
      auto flush = [&] {
        if (bytes.empty()) return;
        out.push_back(raw ? bytes : hftext::repair_utf8(bytes));
        bytes.clear();
      };
      for (auto& t : toks) {
        unsigned v = 0;
        if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
            std::isxdigit(static_cast<unsigned char>(t[3])) &&
            std::isxdigit(static_cast<unsigned char>(t[4]))) {
          v = static_cast<unsigned>(std::stoul(t.substr(3, 2), nullptr, 16));
          bytes += static_cast<char>(v);
        } else {
          flush();
          out.push_back(std::move(t));
        }
      }
      flush();
      toks.swap(out);
      return;
    }
    case DecodeStep::kByteLevel: {
      // Added tokens pass through as text; runs of other tokens map back to bytes.
      std::vector<std::string> out;
      std::string bytes;
      bool in_run = false;
      auto flush = [&] {
        if (!in_run) return;
        out.push_back(raw ? bytes : hftext::repair_utf8(bytes));
        bytes.clear();
        in_run = false;
      };
      for (auto& t : toks) {
        if (vocab.count(t) && added_flag[static_cast<size_t>(vocab.find(t)->second)]) {
          flush();
          out.push_back(std::move(t));
          continue;
        }
        in_run = true;
        for (size_t i = 0; i < t.size();) {
          const auto c0 = static_cast<unsigned char>(t[i]);
          const size_t n = std::min(hftext::utf8_len(c0), t.size() - i);
          uint32_t cp = n == 1 ? c0 : (c0 & (0xFF >> (n + 1)));
          for (size_t k = 1; k < n; ++k)
            cp = (cp << 6) | (static_cast<unsigned char>(t[i + k]) & 0x3F);
          auto it = unicode_to_byte.find(cp);
          if (it != unicode_to_byte.end()) bytes += static_cast<char>(it->second);
          i += n;
        }
      }
      flush();
      toks.swap(out);
      return;
    }
  }
}

std::string HfTokenizer::Impl::decode_ids(const std::vector<int32_t>& ids, bool skip_special,
                                          bool at_start, bool raw) const {
  std::vector<std::string> toks;
  toks.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= tokens.size()) {
      throw Error(path + ": token id " + std::to_string(id) + " out of range [0, " +
                  std::to_string(tokens.size()) + ")");
    }
    if (skip_special && special_flag[static_cast<size_t>(id)]) continue;
    toks.push_back(tokens[static_cast<size_t>(id)]);
  }
  if (!decoder) {
    std::string s;
    for (size_t i = 0; i < toks.size(); ++i) s += (i ? " " : "") + toks[i];
    return s;
  }
  run_decoder(*decoder, toks, at_start, raw);
  std::string s;
  for (const auto& t : toks) s += t;
  return s;
}

// ---- public ------------------------------------------------------------------------------

HfTokenizer::HfTokenizer(const std::string& json_path) : impl_(std::make_unique<Impl>()) {
  try {
    impl_->load(json_path);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(json_path + ": " + e.what());
  }
}

HfTokenizer::~HfTokenizer() = default;

std::string HfTokenizer::decode(const std::vector<int32_t>& ids) const {
  return decode(ids, {});
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids, const HfDecodeOptions& opt) const {
  std::string s = impl_->decode_ids(ids, opt.skip_special_tokens, true, false);
  if (opt.clean_up_spaces.value_or(impl_->clean_up)) s = clean_up(std::move(s));
  return s;
}

std::string HfTokenizer::decode_token(int32_t prev, int32_t id) const {
  const bool at_start = prev < 0 || prev == impl_->bos;
  return impl_->decode_ids({id}, false, at_start, true);
}

int32_t HfTokenizer::bos_id() const {
  return impl_->bos;
}
int32_t HfTokenizer::eos_id() const {
  return impl_->eos;
}
int32_t HfTokenizer::pad_id() const {
  return impl_->pad;
}
int32_t HfTokenizer::vocab_size() const {
  return static_cast<int32_t>(impl_->tokens.size());
}
int32_t HfTokenizer::token_to_id(std::string_view token) const {
  return impl_->id_of(token);
}

const std::string& HfTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw Error(impl_->path + ": token id " + std::to_string(id) + " out of range");
  return impl_->tokens[static_cast<size_t>(id)];
}

bool HfTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && impl_->special_flag[static_cast<size_t>(id)];
}

std::string StreamDecoder::push(int32_t id) {
  pending_ += tok_.decode_token(prev_, id);
  prev_ = id;
  const size_t n = hftext::complete_utf8_prefix(pending_);
  std::string out = hftext::repair_utf8(std::string_view(pending_).substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = hftext::repair_utf8(pending_);
  pending_.clear();
  return out;
}

std::string find_hf_tokenizer_json(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const auto p = fs::path(path) / "tokenizer.json";
    return fs::is_regular_file(p, ec) ? p.string() : std::string();
  }
  return fs::is_regular_file(path, ec) ? path : std::string();
}

}  // namespace hone
