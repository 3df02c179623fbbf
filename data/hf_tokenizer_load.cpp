// Loading an HfTokenizer: tokenizer.json's BPE model, added tokens, normalizer, pre-tokenizer,
// decoder and post-processor, and tokenizer_config.json's special tokens, turned into the pieces
// of hf_tokenizer_impl.h. Anything unsupported fails here, at load time, not mid-encode.
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "autograd/error.h"
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
