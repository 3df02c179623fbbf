// Plain-text training data: corpus → tokens (BOS/EOS per document) → packed windows → train/val.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/packing.h"
#include "data/text_corpus.h"
#include "data/text_tokens.h"
#include "data/tokenizer.h"

namespace hone {

// Encodes every document with tokenizer.encode(text, add_bos, add_eos) and concatenates the
// results in order, so a document may continue from one window into the next. Documents with
// empty text are skipped (they would add a bare BOS/EOS pair). A document never starts with two
// BOS ids, even if a tokenizer adds one on its own as well as on request: repeats are dropped.
std::vector<int32_t> tokenize_documents(const std::vector<Document>& docs,
                                        const Tokenizer& tokenizer, bool add_bos = true,
                                        bool add_eos = true);

struct TextDataOptions {
  std::string train;          // corpus spec for read_text_corpus (file, folder or glob)
  std::string val;            // optional separate val corpus; then val_fraction must be 0
  double val_fraction = 0.0;  // else this share of the train windows, see split_train_val
  CorpusOptions corpus;
  int64_t seq_len = 0;  // T, required > 0
  bool add_bos = true;  // per document, as Llama-style models are trained
  bool add_eos = true;
  // Keep the last, partial window (inputs padded with EOS, or 0 without one; targets ignored).
  bool keep_tail = false;
  // The token cache (see TextTokenOptions): the tokenizer's key ("" = no cache), the folder used
  // when the corpus folder is read-only, and the piece size of the streaming tokenizer.
  std::string tokenizer_key;
  std::string fallback_cache_dir;
  int64_t chunk_bytes = int64_t{1} << 18;
};

// tokenize_documents + pack_tokens for one corpus.
std::vector<Example> pack_documents(const std::vector<Document>& docs, const Tokenizer& tokenizer,
                                    const TextDataOptions& options);

// Tokenizes options.train (and options.val) in a streaming pass into token stores (reused when
// cached, see corpus_tokens) and splits their windows, which are made from the mapped ids only when
// a batch needs them. The windows are those pack_documents gives for the same documents. Throws
// hone::Error when an option is out of range, both val and val_fraction are given, a side ends up
// with no examples, a file is not text, or a val document is byte-identical to a train document
// (the same file given twice). `stats`, when given, receives both sides' counts and warnings.
TrainValSplit load_text_data(const TextDataOptions& options, const Tokenizer& tokenizer,
                             TextTokenStats* stats = nullptr);

// The TextTokenOptions these options imply.
TextTokenOptions text_token_options(const TextDataOptions& options);

}  // namespace hone
