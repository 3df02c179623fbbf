// A text corpus as a token stream, built in one streaming pass per file into token stores
// (data/token_store.h) that are cached and reused: memory stays at the stores' ids (2 or 4 bytes
// a token, mapped) plus a bounded working set, however large the corpus.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/packing.h"
#include "data/text_corpus.h"
#include "data/tokenizer.h"

namespace hone {

struct TextTokenOptions {
  CorpusOptions corpus;
  bool add_bos = true;
  bool add_eos = true;
  // Identifies the tokenizer (e.g. tokenizer_files_key of its files). Empty: no cache; each
  // file's ids go to an unlinked temporary store that is gone when the run ends.
  std::string tokenizer_key;
  // Where stores go when the corpus folder's .hone-cache cannot be written; empty:
  // $TMPDIR/hone-token-cache-<uid> (or /tmp/...).
  std::string fallback_cache_dir;
  // A document longer than this is tokenized in pieces cut at line breaks where the tokenizer
  // gives the same ids as for the whole document (see text_tokens.cpp); the working set is a few
  // times this.
  int64_t chunk_bytes = int64_t{1} << 18;
  // Share of invalid UTF-8 sequences above which a file is refused as not text.
  double max_invalid_share = 0.01;
};

struct TextTokenStats {
  int64_t files = 0;
  int64_t tokenized = 0;  // files tokenized in this call
  int64_t reused = 0;     // files whose cached store was valid and reused
  int64_t tokens = 0;
  int64_t mapped_bytes = 0;
  int64_t pieces = 0;               // encode calls while tokenizing (a long document takes several)
  std::vector<std::string> stores;  // per file: the store's path ("" when anonymous)
  std::vector<std::string> warnings;  // e.g. a few invalid UTF-8 sequences in a file
};

// A hash of each document's text and the document's name ("path" or "path#k"), for telling a
// val document that repeats a train document.
using DocumentIndex = std::unordered_map<uint64_t, std::string>;

// The token stream of the corpus `spec` (see read_text_corpus): every document encoded with
// encode(text, add_bos, add_eos), BOS never doubled, empty documents skipped, concatenated in
// order: the same ids tokenize_documents(read_text_corpus(spec)) gives. Refuses (hone::Error
// naming the file) a file holding a NUL byte or too much invalid UTF-8. When `record` is given,
// each document's hash is added to it; when `forbid` is given, a document found in it is an
// error naming both documents. Running out of memory is an error naming the file.
std::shared_ptr<const TokenSequence> corpus_tokens(const std::string& spec,
                                                   const Tokenizer& tokenizer,
                                                   const TextTokenOptions& options,
                                                   TextTokenStats* stats = nullptr,
                                                   DocumentIndex* record = nullptr,
                                                   const DocumentIndex* forbid = nullptr);

// A key for a tokenizer from its files: for a folder the tokenizer files inside it, for a file
// its bytes (the first 64 MiB and the size of a larger one, e.g. a GGUF model's metadata).
std::string tokenizer_files_key(const std::string& path);

// Where a file's store is cached: <folder>/.hone-cache/<name>.<hash of the options>.tokens, and
// the fallback when that folder cannot be written. For tests and the planner.
std::string token_cache_path(const std::string& file, const TextTokenOptions& options,
                             bool fallback = false);

// The byte size of the cached, up-to-date store of `file` (what a run maps), or -1 when there is
// none (the planner then estimates). Reads the file to check its content hash, as a run would.
int64_t cached_store_bytes(const std::string& file, const TextTokenOptions& options);

}  // namespace hone
