// Loading an HfTokenizer: tokenizer.json's BPE model, added tokens, normalizer, pre-tokenizer,
// decoder and post-processor, and tokenizer_config.json's special tokens, turned into the pieces
// of hf_tokenizer_impl.h. Anything unsupported fails here, at load time, not mid-encode.
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "autograd/error.h"
#include "autograd/json_parse.h"
#include "data/hf_text.h"
#include "data/hf_tokenizer.h"
#include "data/hf_tokenizer_impl.h"

namespace hone {

using json = nlohmann::json;
using hftext::Regex;

namespace {

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

// A short rendering of a JSON value for error messages.
std::string show(const json& v) {
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

// How many ids a tokenizer.json may leave unused: a padded vocabulary's few, never so many that a
// stray id makes the per-id tables huge.
constexpr int64_t kMaxIdGap = 65536;

}  // namespace

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
  } else if (type == "Digits") {
    // Digits apart from the rest (SmolLM, StarCoder): HF's is_numeric is Unicode's N.
    p.kind = PreTokenizer::kSplit;
    p.re = std::make_unique<Regex>(j.value("individual_digits", false) ? "\\p{N}" : "\\p{N}+");
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
    // Stripping "" would never stop matching.
    if (d.a.empty()) throw Error(path + ": Strip decoder: content is empty");
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
  const json j = parse_json_file<json>(json_path);
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
  // Ids index arrays (tokens, flags, the model's embedding rows): each must be a non-negative
  // integer naming one token. Gaps are allowed (a padded vocabulary's unused ids) but bounded, so
  // a stray huge id cannot make the tables huge.
  const json& vj = m.at("vocab");
  if (!vj.is_object()) throw Error(path + ": model.vocab: expected an object {token: id}");
  if (vj.empty()) throw Error(path + ": model.vocab: is empty");
  const json added_j = j.value("added_tokens", json::array());
  if (!added_j.is_array()) throw Error(path + ": added_tokens: expected an array");
  const int64_t id_limit = static_cast<int64_t>(vj.size() + added_j.size()) + kMaxIdGap;
  auto read_id = [&](const json& v, const std::string& field) -> int32_t {
    if (!v.is_number_integer())
      throw Error(path + ": " + field + ": expected an integer id, got " + show(v));
    const bool big = v.is_number_unsigned() ? v.get<uint64_t>() >= static_cast<uint64_t>(id_limit)
                                            : v.get<int64_t>() >= id_limit;
    if (!v.is_number_unsigned() && v.get<int64_t>() < 0)
      throw Error(path + ": " + field + ": id " + v.dump() + " is negative");
    if (big)
      throw Error(path + ": " + field + ": id " + v.dump() +
                  " is out of range: " + std::to_string(vj.size()) + " vocab entries and " +
                  std::to_string(added_j.size()) + " added tokens leave at most " +
                  std::to_string(kMaxIdGap) + " unused ids");
    return static_cast<int32_t>(v.get<int64_t>());
  };
  std::vector<std::pair<std::string, int32_t>> vocab_ids;
  vocab_ids.reserve(vj.size());
  int32_t max_id = -1;
  for (const auto& [tok, idj] : vj.items()) {
    vocab_ids.emplace_back(tok, read_id(idj, "model.vocab[" + json(tok).dump() + "]"));
    max_id = std::max(max_id, vocab_ids.back().second);
  }
  std::vector<Added> added_in;
  for (size_t i = 0; i < added_j.size(); ++i) {
    const json& a = added_j[i];
    const std::string field = "added_tokens[" + std::to_string(i) + "]";
    if (!a.is_object()) throw Error(path + ": " + field + ": expected an object");
    if (!a.contains("content") || !a["content"].is_string())
      throw Error(path + ": " + field + ".content: expected a string");
    if (!a.contains("id")) throw Error(path + ": " + field + ": missing field \"id\"");
    Added t{a["content"].get<std::string>(), read_id(a["id"], field + ".id"),
            a.value("special", false), a.value("lstrip", false), a.value("rstrip", false)};
    if (t.content.empty()) throw Error(path + ": " + field + ".content: is empty");
    max_id = std::max(max_id, t.id);
    added_in.push_back(std::move(t));
  }
  tokens.assign(static_cast<size_t>(max_id + 1), std::string());
  std::vector<uint8_t> taken(tokens.size(), 0);
  vocab.reserve(static_cast<size_t>(max_id + 1));
  for (const auto& [tok, id] : vocab_ids) {
    const auto at = static_cast<size_t>(id);
    if (taken[at])
      throw Error(path + ": model.vocab: tokens " + json(tokens[at]).dump() + " and " +
                  json(tok).dump() + " both have id " + std::to_string(id));
    taken[at] = 1;
    tokens[at] = tok;
    vocab.emplace(tok, id);
  }
  ignore_merges = m.value("ignore_merges", false);
  byte_fallback = m.value("byte_fallback", false);
  fuse_unk = m.value("fuse_unk", false);
  if (m.contains("unk_token") && m["unk_token"].is_string()) {
    const std::string unk = m["unk_token"].get<std::string>();
    unk_id = id_of(unk);
    if (unk_id < 0)
      throw Error(path + ": model.unk_token: " + json(unk).dump() + " is not in model.vocab");
  }

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

  // An added token may repeat a vocab entry (Llama 2's <unk>, <s>, </s>), but with its id.
  for (size_t i = 0; i < added_in.size(); ++i) {
    Added& t = added_in[i];
    const auto at = static_cast<size_t>(t.id);
    const std::string field = path + ": added_tokens[" + std::to_string(i) + "] (" +
                              json(t.content).dump() + ", id " + std::to_string(t.id) + "): ";
    if (taken[at] && tokens[at] != t.content)
      throw Error(field + "id already belongs to " + json(tokens[at]).dump());
    if (const int32_t had = id_of(t.content); had >= 0 && had != t.id)
      throw Error(field + "the token already has id " + std::to_string(had));
    if (taken[at] == 2) continue;  // listed twice, identically
    taken[at] = 2;
    tokens[at] = t.content;
    vocab[t.content] = t.id;
    added.push_back(std::move(t));
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
  auto post_id = [&](const json& v) {
    const int64_t id = v.is_number_integer() ? v.get<int64_t>() : -1;
    if (id < 0 || static_cast<uint64_t>(id) >= tokens.size() || !taken[static_cast<size_t>(id)])
      throw Error(path + ": post_processor: special token id " + show(v) +
                  " is not in the vocabulary");
    return static_cast<int32_t>(id);
  };
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
        for (const auto& id : st.at("ids")) (seen_a ? suffix : prefix).push_back(post_id(id));
      }
    } else if (type == "RobertaProcessing" || type == "BertProcessing") {
      prefix.push_back(post_id(pp.at("cls").at(1)));
      suffix.push_back(post_id(pp.at("sep").at(1)));
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
  const std::string cfg_path =
      (std::filesystem::path(json_path).parent_path() / "tokenizer_config.json").string();
  json cfg = json::object();
  if (std::filesystem::exists(cfg_path)) cfg = parse_json_file<json>(cfg_path);
  if (!cfg.is_object()) throw Error(cfg_path + ": expected a JSON object");
  // A special token: its text, or an AddedToken object {"content": text, ...}; null for none.
  auto cfg_id = [&](const char* key) -> int32_t {
    auto it = cfg.find(key);
    if (it == cfg.end() || it->is_null()) return -1;
    const json* c = &*it;
    if (c->is_object() && c->contains("content")) c = &(*c)["content"];
    if (!c->is_string())
      throw Error(cfg_path + ": " + key +
                  ": expected a token (a string or an object with \"content\") or null, got " +
                  show(*it));
    const std::string t = c->get<std::string>();
    if (t.empty()) return -1;
    const int32_t id = id_of(t);
    if (id < 0)
      throw Error(cfg_path + ": " + key + ": " + json(t).dump() + " is not in the vocabulary of " +
                  path);
    return id;
  };
  auto cfg_bool = [&](const char* key, bool def) {
    auto it = cfg.find(key);
    if (it == cfg.end() || it->is_null()) return def;
    if (!it->is_boolean())
      throw Error(cfg_path + ": " + key + ": expected true or false, got " + show(*it));
    return it->get<bool>();
  };
  bos = cfg_id("bos_token");
  eos = cfg_id("eos_token");
  pad = cfg_id("pad_token");
  if (bos < 0 && prefix.size() == 1) bos = prefix[0];
  if (eos < 0 && suffix.size() == 1) eos = suffix[0];
  const bool add_bos = cfg_bool("add_bos_token", false);
  const bool add_eos = cfg_bool("add_eos_token", false);
  if (!template_tokens) {
    if (add_bos && bos >= 0) prefix.push_back(bos);
    if (add_eos && eos >= 0) suffix.push_back(eos);
  }
  const auto& cu =
      cfg.contains("clean_up_tokenization_spaces") ? cfg["clean_up_tokenization_spaces"] : json();
  clean_up = cu.is_boolean() ? cu.get<bool>() : true;  // transformers.js default
}

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
