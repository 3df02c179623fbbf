#include "data/text_tokens.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <new>
#include <sstream>
#include <string_view>

#include "autograd/error.h"
#include "data/text_check.h"
#include "data/token_store.h"

namespace fs = std::filesystem;

namespace hone {
namespace {

constexpr size_t kBlock = size_t{1} << 18;  // bytes per read(2)

// Where a piece may end. `cut` is the end of the piece (npos: none found yet) and `resume` where
// the next search may start (candidates before it were judged already).
struct Cut {
  size_t cut = std::string_view::npos;
  size_t resume = 0;
};
// Finds a cut in view[from, limit) (a piece never ends past limit: a separator could straddle
// it). The view is the unread part of the file.
using CutFinder = std::function<Cut(std::string_view view, size_t from, size_t limit)>;

// Reads a file block by block and hands out its documents in pieces of about `target` bytes:
// the byte order mark is dropped, documents are cut at the separator (dropped) when there is one,
// and empty documents are skipped. Every block read goes to `on_block` first, as read.
class PieceReader {
 public:
  PieceReader(const std::string& path, const std::string& sep, size_t target, CutFinder finder,
              std::function<void(std::string_view)> on_block)
      : path_(path),
        sep_(sep),
        target_(target),
        finder_(std::move(finder)),
        on_block_(std::move(on_block)) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0)
      throw Error(path + ": cannot open file for reading (" + std::strerror(errno) + ")");
  }
  ~PieceReader() { ::close(fd_); }
  PieceReader(const PieceReader&) = delete;
  PieceReader& operator=(const PieceReader&) = delete;

  // The next piece; first / last: whether it starts / ends its document. False at the end.
  bool next(std::string& piece, bool& first, bool& last) {
    for (;;) {
      const std::string_view view = std::string_view(buf_).substr(pos_);
      if (!sep_.empty()) {
        const size_t e = view.find(sep_, sep_from_);
        if (e != std::string_view::npos) {
          first = !open_;
          last = true;
          piece.assign(view.substr(0, e));
          pos_ += e + sep_.size();
          reset_search();
          open_ = false;
          if (first && piece.empty()) continue;
          return true;
        }
        sep_from_ = view.size() >= sep_.size() ? view.size() - sep_.size() + 1 : 0;
      }
      if (view.size() >= target_ + sep_.size()) {
        const size_t limit = view.size() - sep_.size();
        if (cut_from_ < limit) {
          const Cut c = finder_(view, std::max(cut_from_, target_), limit);
          if (c.cut != std::string_view::npos && c.cut > 0 && c.cut <= limit) {
            first = !open_;
            last = false;
            piece.assign(view.substr(0, c.cut));
            pos_ += c.cut;
            reset_search();
            open_ = true;
            return true;
          }
          cut_from_ = std::max(cut_from_, c.resume);
        }
      }
      if (eof_) {
        if (view.empty() && !open_) return false;
        first = !open_;
        last = true;
        piece.assign(view);
        pos_ = buf_.size();
        open_ = false;
        if (first && piece.empty()) return false;
        return true;
      }
      read_block();
    }
  }

 private:
  void reset_search() {
    sep_from_ = 0;
    cut_from_ = 0;
  }

  void read_block() {
    if (pos_ > 0) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    const size_t old = buf_.size();
    buf_.resize(old + kBlock);
    ssize_t n;
    do {
      n = ::read(fd_, buf_.data() + old, kBlock);
    } while (n < 0 && errno == EINTR);
    if (n < 0) throw Error(path_ + ": read error (" + std::strerror(errno) + ")");
    buf_.resize(old + static_cast<size_t>(n));
    if (n == 0) eof_ = true;
    on_block_(std::string_view(buf_).substr(old));
    if (!bom_checked_ && (buf_.size() >= 3 || eof_)) {
      bom_checked_ = true;
      if (buf_.compare(0, 3, "\xEF\xBB\xBF") == 0) buf_.erase(0, 3);
    }
  }

  std::string path_, sep_;
  size_t target_;
  CutFinder finder_;
  std::function<void(std::string_view)> on_block_;
  int fd_ = -1;
  std::string buf_;
  size_t pos_ = 0;       // consumed bytes of buf_
  size_t sep_from_ = 0;  // relative to pos_: no separator starts before it
  size_t cut_from_ = 0;  // relative to pos_: no cut is possible before it
  bool eof_ = false, open_ = false, bom_checked_ = false;
};

bool is_ascii_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Whether the codepoint ending just before `end` is whitespace by JavaScript's \s (what the
// pre-tokenizer regexes use): ASCII spaces, U+0085, U+00A0, U+1680, U+2000–U+200A, U+2028,
// U+2029, U+202F, U+205F, U+3000, U+FEFF.
bool space_before(std::string_view v, size_t end) {
  if (end == 0) return true;
  const auto c = static_cast<unsigned char>(v[end - 1]);
  if (c < 0x80) return is_ascii_space(c);
  size_t s = end - 1;
  while (s > 0 && end - s < 4 && (static_cast<unsigned char>(v[s]) & 0xC0) == 0x80) --s;
  const std::string_view cp = v.substr(s, end - s);
  if (cp == "\xC2\x85" || cp == "\xC2\xA0" || cp == "\xE1\x9A\x80" || cp == "\xE3\x80\x80" ||
      cp == "\xEF\xBB\xBF" || cp == "\xE2\x81\x9F")
    return true;
  return cp.size() == 3 && cp[0] == '\xE2' && cp[1] == '\x80' &&
         ((static_cast<unsigned char>(cp[2]) >= 0x80 &&
           static_cast<unsigned char>(cp[2]) <= 0x8A) ||
          cp[2] == '\xA8' || cp[2] == '\xA9' || cp[2] == '\xAF');
}

bool space_at(std::string_view v, size_t at) {
  if (at >= v.size()) return true;
  size_t end = at + 1;
  while (end < v.size() && end - at < 4 && (static_cast<unsigned char>(v[end]) & 0xC0) == 0x80)
    ++end;
  return space_before(v, end);
}

// "\n" + text (built by hand: GCC 12 misreads operator+ here as an overlapping memcpy).
std::string after_break(std::string_view text) {
  std::string s;
  s.reserve(text.size() + 1);
  s.push_back('\n');
  s.append(text.data(), text.size());
  return s;
}

// The piece boundaries where tokenizing the two sides apart gives the ids of the whole: right
// after a single line break with a non-space on both sides ("X\nY"). The right side is encoded
// after a "\n" of context whose ids are then dropped; a cut is taken only where the ids of
// "\n" + the following text start with the ids of "\n" alone, i.e. the line break merged with
// nothing: then no token spans the cut (BPE merges, llama2.c's included, are local to each side
// of an unmerged token) and, for regex pre-tokenizers, "\n" between two non-spaces ends a
// pre-token on both sides.
class SafeCut {
 public:
  explicit SafeCut(const Tokenizer& tok) : tok_(tok), ctx_(tok.encode("\n", false, false)) {}

  const std::vector<int32_t>& context() const { return ctx_; }

  Cut operator()(std::string_view v, size_t from, size_t limit) const {
    Cut r;
    r.resume = from;
    size_t q = from > 0 ? from - 1 : 0;
    while (true) {
      q = v.find('\n', q);
      if (q == std::string_view::npos) {
        r.resume = std::max(r.resume, limit);
        return r;
      }
      if (q + 1 >= limit) return r;
      r.resume = q;  // a break not judged yet
      const size_t p = q + 1;
      if (!space_before(v, q) && !space_at(v, p)) {
        // The line after the cut, whole, is what the check encodes.
        const size_t line_end = v.find('\n', p);
        if (line_end == std::string_view::npos || line_end >= limit) return r;
        const size_t len = std::min(line_end - p, size_t{4096});
        const std::vector<int32_t> ids = tok_.encode(after_break(v.substr(p, len)), false, false);
        if (ids.size() > ctx_.size() && std::equal(ctx_.begin(), ctx_.end(), ids.begin())) {
          r.cut = p;
          return r;
        }
      }
      q = p;
      r.resume = p;
    }
  }

 private:
  const Tokenizer& tok_;
  std::vector<int32_t> ctx_;
};

std::string hex_bytes(const std::string& s) {
  std::string out;
  char b[3];
  for (unsigned char c : s) {
    std::snprintf(b, sizeof b, "%02x", c);
    out += b;
  }
  return out;
}

uint64_t hash_str(const std::string& s) {
  Hash64 h;
  h.update(s);
  return h.digest();
}

// What the ids of a file depend on besides the file itself.
std::string options_key(const TextTokenOptions& o) {
  return "tokenizer " + o.tokenizer_key + "\nadd_bos " + std::to_string(o.add_bos) + " add_eos " +
         std::to_string(o.add_eos) + " separator " + hex_bytes(o.corpus.doc_separator) + " chunk " +
         std::to_string(o.chunk_bytes) + "\n";
}

// A corpus folder nobody may write to (no write bit: a shared, read-only data set) is left alone
// even by root, who could write there anyway.
bool has_write_bits(const fs::path& dir) {
  std::error_code ec;
  const fs::perms p = fs::status(dir.empty() ? fs::path(".") : dir, ec).permissions();
  if (ec) return true;  // let the write itself report
  return (p & (fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write)) !=
         fs::perms::none;
}

std::string fallback_dir(const TextTokenOptions& o) {
  if (!o.fallback_cache_dir.empty()) return o.fallback_cache_dir;
  const char* env = std::getenv("TMPDIR");
  const std::string tmp = env != nullptr && *env != '\0' ? env : "/tmp";
  return tmp + "/hone-token-cache-" + std::to_string(::getuid());
}

struct FileFacts {
  int64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t content = 0;
};

std::string store_key(const std::string& file, const FileFacts& f, const TextTokenOptions& o) {
  std::error_code ec;
  fs::path canon = fs::weakly_canonical(file, ec);
  if (ec) canon = file;
  return "hone token store " + std::to_string(kTokenStoreVersion) + "\n" + options_key(o) +
         "corpus " + canon.string() + "\nsize " + std::to_string(f.size) + " mtime " +
         std::to_string(f.mtime_ns) + " content " + hex64(f.content) + "\n";
}

FileFacts stat_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Error(path + ": cannot stat (" + std::strerror(errno) + ")");
  FileFacts f;
  f.size = static_cast<int64_t>(st.st_size);
  f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return f;
}

// Concatenated stores, one per file.
class StoreSequence final : public TokenSequence {
 public:
  void add(std::shared_ptr<const TokenStore> s) {
    starts_.push_back(total_);
    total_ += s->size();
    stores_.push_back(std::move(s));
  }
  int64_t size() const override { return total_; }
  void read(int64_t begin, int64_t n, int32_t* out) const override {
    size_t k = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), begin) -
                                   starts_.begin()) -
               1;
    while (n > 0) {
      const TokenStore& s = *stores_[k];
      int64_t i = begin - starts_[k];
      for (; i < s.size() && n > 0; ++i, --n, ++begin) *out++ = s[i];
      ++k;
    }
  }

 private:
  std::vector<std::shared_ptr<const TokenStore>> stores_;
  std::vector<int64_t> starts_;
  int64_t total_ = 0;
};

// The read-only pass: is the file text, what is its content hash, and (when asked) each
// document's hash. Returns the warning the text check gives ("" when none).
std::string check_file(const std::string& path, const TextTokenOptions& o, FileFacts& facts,
                       DocumentIndex* record, const DocumentIndex* forbid) {
  TextCheck check;
  Hash64 content;
  const bool docs = record != nullptr || forbid != nullptr;
  const size_t target = static_cast<size_t>(std::max<int64_t>(o.chunk_bytes, 1));
  PieceReader reader(
      path, o.corpus.doc_separator, target,
      [](std::string_view, size_t, size_t limit) {
        return Cut{limit, limit};
      },
      [&](std::string_view block) {
        check.feed(block);
        content.update(block);
      });
  std::string piece;
  bool first = false, last = false;
  Hash64 doc;
  int64_t k = 0;
  while (reader.next(piece, first, last)) {
    if (!docs) continue;
    if (first) doc = Hash64();
    doc.update(piece);
    if (!last) continue;
    const std::string name =
        o.corpus.doc_separator.empty() ? path : path + "#" + std::to_string(k++);
    const uint64_t h = doc.digest();
    if (forbid != nullptr) {
      auto it = forbid->find(h);
      if (it != forbid->end())
        throw Error(name + ": val document is identical to train document " + it->second);
    }
    if (record != nullptr) record->emplace(h, name);
  }
  check.finish();
  facts.content = content.digest();
  return check.verdict(path, o.max_invalid_share);
}

// The tokenizing pass into `writer`.
void tokenize_file(const std::string& path, const Tokenizer& tok, const TextTokenOptions& o,
                   TokenStoreWriter& writer, TextTokenStats* stats) {
  SafeCut safe(tok);
  const std::vector<int32_t>& ctx = safe.context();
  const size_t target = static_cast<size_t>(std::max<int64_t>(o.chunk_bytes, 1));
  PieceReader reader(
      path, o.corpus.doc_separator, target,
      [&safe](std::string_view v, size_t from, size_t limit) { return safe(v, from, limit); },
      [](std::string_view) {});
  const int32_t bos = tok.bos_id();
  std::string piece;
  bool first = false, last = false;
  while (reader.next(piece, first, last)) {
    if (stats != nullptr) ++stats->pieces;
    const bool eos = last && o.add_eos;
    if (first) {
      const std::vector<int32_t> ids = tok.encode(piece, o.add_bos, eos);
      size_t skip = 0;  // a document never starts with two BOS ids
      if (bos >= 0)
        while (skip + 1 < ids.size() && ids[skip] == bos && ids[skip + 1] == bos) ++skip;
      writer.append(ids.data() + skip, ids.size() - skip);
      continue;
    }
    // A continuation: after the "\n" the previous piece ended with (see SafeCut).
    const std::vector<int32_t> ids = tok.encode(after_break(piece), false, eos);
    if (ids.size() < ctx.size() || !std::equal(ctx.begin(), ctx.end(), ids.begin()))
      throw Error(path + ": internal error: a piece's line break merged with its text");
    writer.append(ids.data() + ctx.size(), ids.size() - ctx.size());
  }
}

std::shared_ptr<const TokenStore> build_store(const std::string& file, const Tokenizer& tok,
                                              const TextTokenOptions& o, const std::string& key,
                                              TextTokenStats* stats) {
  if (o.tokenizer_key.empty()) {
    TokenStoreWriter w("", key, tok.vocab_size());
    tokenize_file(file, tok, o, w, stats);
    if (stats != nullptr) stats->stores.push_back("");
    return w.finish();
  }
  // Beside the corpus when its folder can be written, else the fallback folder.
  std::string why;
  for (const bool fallback : {false, true}) {
    const std::string path = token_cache_path(file, o, fallback);
    std::error_code ec;
    if (!fallback && !has_write_bits(fs::path(path).parent_path().parent_path())) {
      why = fs::path(path).parent_path().parent_path().string() + ": read-only folder";
      continue;
    }
    fs::create_directories(fs::path(path).parent_path(), ec);
    std::unique_ptr<TokenStoreWriter> w;
    try {
      w = std::make_unique<TokenStoreWriter>(path, key, tok.vocab_size());
    } catch (const Error& e) {
      why += std::string(why.empty() ? "" : "; ") + e.what();
      continue;
    }
    tokenize_file(file, tok, o, *w, stats);
    if (stats != nullptr) stats->stores.push_back(path);
    return w->finish();
  }
  throw Error(file + ": cannot write a token store: " + why);
}

}  // namespace

std::string token_cache_path(const std::string& file, const TextTokenOptions& o, bool fallback) {
  const fs::path p(file);
  const std::string name =
      p.filename().string() + "." + hex64(hash_str(options_key(o))) + ".tokens";
  if (!fallback) {
    const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
    return (dir / ".hone-cache" / name).string();
  }
  std::error_code ec;
  fs::path canon = fs::weakly_canonical(file, ec);
  if (ec) canon = file;
  return fallback_dir(o) + "/" + hex64(hash_str(canon.string())).substr(0, 8) + "-" + name;
}

std::string tokenizer_files_key(const std::string& path) {
  std::error_code ec;
  std::vector<std::string> files;
  if (fs::is_directory(path, ec)) {
    for (const char* n : {"tokenizer.json", "tokenizer_config.json", "tokenizer.bin", "tok512.bin",
                          "tokenizer.model", "special_tokens_map.json"}) {
      const fs::path f = fs::path(path) / n;
      if (fs::is_regular_file(f, ec)) files.push_back(f.string());
    }
  } else {
    files.push_back(path);
    // A tokenizer.json's settings beside it change how it encodes.
    const fs::path cfg = fs::path(path).parent_path() / "tokenizer_config.json";
    if (fs::path(path).filename() == "tokenizer.json" && fs::is_regular_file(cfg, ec))
      files.push_back(cfg.string());
  }
  std::string key;
  for (const std::string& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(f + ": cannot open file for reading (" + std::strerror(errno) + ")");
    Hash64 h;
    std::vector<char> buf(1 << 20);
    int64_t total = 0;
    for (;;) {
      if (total >= (int64_t{64} << 20)) break;  // a model file: its metadata is at the start
      const ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      h.update(std::string_view(buf.data(), static_cast<size_t>(n)));
      total += n;
    }
    ::close(fd);
    key += fs::path(f).filename().string() + ":" + hex64(h.digest()) + ":" +
           std::to_string(stat_file(f).size) + " ";
  }
  return key;
}

int64_t cached_store_bytes(const std::string& file, const TextTokenOptions& o) {
  if (o.tokenizer_key.empty()) return -1;
  FileFacts facts = stat_file(file);
  try {
    check_file(file, o, facts, nullptr, nullptr);
  } catch (const Error&) {
    return -1;  // the run reports it
  }
  const std::string key = store_key(file, facts, o);
  for (const bool fallback : {false, true}) {
    const std::string path = token_cache_path(file, o, fallback);
    const TokenStoreInfo info = peek_token_store(path);
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (info.tokens >= 0 && info.key == key && !ec) return static_cast<int64_t>(size);
  }
  return -1;
}

std::shared_ptr<const TokenSequence> corpus_tokens(const std::string& spec,
                                                   const Tokenizer& tokenizer,
                                                   const TextTokenOptions& o, TextTokenStats* stats,
                                                   DocumentIndex* record,
                                                   const DocumentIndex* forbid) {
  auto seq = std::make_shared<StoreSequence>();
  for (const std::string& file : corpus_files(spec)) {
    try {
      FileFacts facts = stat_file(file);
      const std::string warning = check_file(file, o, facts, record, forbid);
      if (stats != nullptr && !warning.empty()) stats->warnings.push_back(warning);
      const std::string key = store_key(file, facts, o);
      std::shared_ptr<const TokenStore> store;
      if (!o.tokenizer_key.empty()) {
        for (const bool fallback : {false, true}) {
          const std::string path = token_cache_path(file, o, fallback);
          store = TokenStore::open(path, key);
          if (store) {
            if (stats != nullptr) {
              ++stats->reused;
              stats->stores.push_back(path);
            }
            break;
          }
        }
      }
      if (!store) {
        store = build_store(file, tokenizer, o, key, stats);
        if (stats != nullptr) ++stats->tokenized;
      }
      if (stats != nullptr) {
        ++stats->files;
        stats->tokens += store->size();
        stats->mapped_bytes += store->mapped_bytes();
      }
      seq->add(std::move(store));
    } catch (const std::bad_alloc&) {
      throw Error(file + ": out of memory while reading and tokenizing this corpus file (" +
                  std::to_string(stat_file(file).size) + " bytes)");
    }
  }
  return seq;
}

}  // namespace hone
