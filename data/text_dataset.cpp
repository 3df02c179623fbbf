#include "data/text_dataset.h"

#include <string_view>
#include <unordered_map>

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

namespace {

std::vector<Example> pack_side(const std::string& what, const std::string& spec,
                               const TextDataOptions& options, const Tokenizer& tokenizer,
                               const std::vector<Document>& docs) {
  std::vector<Example> ex = pack_documents(docs, tokenizer, options);
  if (ex.empty()) {
    throw Error(spec + ": " + what + " corpus is shorter than one window of seq_len + 1 = " +
                std::to_string(options.seq_len + 1) + " tokens (lower data.seq_len)");
  }
  return ex;
}

}  // namespace

TrainValSplit load_text_data(const TextDataOptions& options, const Tokenizer& tokenizer) {
  if (options.train.empty()) throw Error("text data: no train corpus given");
  if (options.seq_len <= 0) {
    throw Error("text data: seq_len must be > 0 (got " + std::to_string(options.seq_len) + ")");
  }
  if (!options.val.empty() && options.val_fraction != 0.0) {
    throw Error("text data: give either a val corpus or val_fraction, not both");
  }
  const std::vector<Document> train_docs = read_text_corpus(options.train, options.corpus);
  if (options.val.empty()) {
    TrainValSplit split = split_train_val(
        pack_side("train", options.train, options, tokenizer, train_docs), options.val_fraction);
    return split;
  }

  const std::vector<Document> val_docs = read_text_corpus(options.val, options.corpus);
  std::unordered_map<std::string_view, const Document*> train_text;
  for (const Document& d : train_docs) train_text.emplace(d.text, &d);
  for (const Document& d : val_docs) {
    auto it = train_text.find(d.text);
    if (it != train_text.end() && !d.text.empty()) {
      throw Error(d.source + ": val document is identical to train document " + it->second->source);
    }
  }
  TrainValSplit split;
  split.train = pack_side("train", options.train, options, tokenizer, train_docs);
  split.val = pack_side("val", options.val, options, tokenizer, val_docs);
  return split;
}

}  // namespace hone
