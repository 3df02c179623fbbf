#include "data/text_dataset.h"

#include "autograd/error.h"

namespace hone {

std::vector<int32_t> tokenize_documents(const std::vector<Document>& docs,
                                        const Tokenizer& tokenizer, bool add_bos, bool add_eos) {
  std::vector<int32_t> stream;
  const int32_t bos = tokenizer.bos_id();
  for (const Document& doc : docs) {
    if (doc.text.empty()) continue;
    const std::vector<int32_t> ids = tokenizer.encode(doc.text, add_bos, add_eos);
    size_t skip = 0;
    if (bos >= 0) {
      while (skip + 1 < ids.size() && ids[skip] == bos && ids[skip + 1] == bos) ++skip;
    }
    stream.insert(stream.end(), ids.begin() + static_cast<std::ptrdiff_t>(skip), ids.end());
  }
  return stream;
}

std::vector<Example> pack_documents(const std::vector<Document>& docs, const Tokenizer& tokenizer,
                                    const TextDataOptions& options) {
  const std::vector<int32_t> stream =
      tokenize_documents(docs, tokenizer, options.add_bos, options.add_eos);
  const int32_t pad = tokenizer.eos_id() >= 0 ? tokenizer.eos_id() : 0;
  return pack_tokens(stream, options.seq_len, options.keep_tail, pad);
}

TextTokenOptions text_token_options(const TextDataOptions& options) {
  TextTokenOptions t;
  t.corpus = options.corpus;
  t.add_bos = options.add_bos;
  t.add_eos = options.add_eos;
  t.tokenizer_key = options.tokenizer_key;
  t.fallback_cache_dir = options.fallback_cache_dir;
  t.chunk_bytes = options.chunk_bytes;
  return t;
}

namespace {

ExampleSet pack_side(const std::string& what, const std::string& spec,
                     const TextDataOptions& options, const Tokenizer& tokenizer,
                     TextTokenStats* stats, DocumentIndex* record, const DocumentIndex* forbid) {
  std::shared_ptr<const TokenSequence> tokens =
      corpus_tokens(spec, tokenizer, text_token_options(options), stats, record, forbid);
  const int32_t pad = tokenizer.eos_id() >= 0 ? tokenizer.eos_id() : 0;
  ExampleSet ex = ExampleSet::windows(std::move(tokens), options.seq_len, options.keep_tail, pad);
  if (ex.empty()) {
    throw Error(spec + ": " + what + " corpus is shorter than one window of seq_len + 1 = " +
                std::to_string(options.seq_len + 1) + " tokens (lower data.seq_len)");
  }
  return ex;
}

}  // namespace

TrainValSplit load_text_data(const TextDataOptions& options, const Tokenizer& tokenizer,
                             TextTokenStats* stats) {
  if (options.train.empty()) throw Error("text data: no train corpus given");
  if (options.seq_len <= 0) {
    throw Error("text data: seq_len must be > 0 (got " + std::to_string(options.seq_len) + ")");
  }
  if (!options.val.empty() && options.val_fraction != 0.0) {
    throw Error("text data: give either a val corpus or val_fraction, not both");
  }
  if (options.val.empty()) {
    return split_train_val(
        pack_side("train", options.train, options, tokenizer, stats, nullptr, nullptr),
        options.val_fraction);
  }
  // Documents are compared by a 64-bit hash of their text: a val document repeating a train
  // document (the same file given twice) is refused without holding either text.
  DocumentIndex train_docs;
  TrainValSplit split;
  split.train = pack_side("train", options.train, options, tokenizer, stats, &train_docs, nullptr);
  split.val = pack_side("val", options.val, options, tokenizer, stats, nullptr, &train_docs);
  return split;
}

}  // namespace hone
