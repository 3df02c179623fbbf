// The encode and decode pipelines of hf_tokenizer.h; building them from tokenizer.json is
// hf_tokenizer_load.cpp.
#include "data/hf_tokenizer.h"

#include <memory>
#include <mutex>
#include <queue>

#include "autograd/error.h"
#include "data/hf_text.h"
#include "data/hf_tokenizer_impl.h"

namespace hone {

namespace {

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

}  // namespace

// ---- the pipeline pieces -------------------------------------------------------------------

void Normalizer::apply(std::string& s) const {
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

// Pieces of text during pre-tokenization: views into the section text or into `store`.
struct Pieces {
  std::vector<std::string_view> v;
  std::vector<std::unique_ptr<std::string>> store;
  std::string_view keep(std::string s) {
    store.push_back(std::make_unique<std::string>(std::move(s)));
    return *store.back();
  }
};

void PreTokenizer::apply(Pieces& p, std::vector<std::pair<uint32_t, uint32_t>>& m) const {
  std::vector<std::string_view> out;
  switch (kind) {
    case kSequence:
      for (const auto& c : children) c.apply(p, m);
      return;
    case kSplit:
    case kByteLevel:
      for (std::string_view s : p.v) {
        if (kind == kByteLevel && add_prefix_space && (s.empty() || s[0] != ' ')) {
          // Not `" " + std::string(s)`: in this file that trips a GCC 12 -Wrestrict false positive.
          s = p.keep(std::string(" ").append(s));
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

}  // namespace hone
