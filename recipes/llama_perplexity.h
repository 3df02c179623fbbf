// llama.cpp's perplexity protocol (`llama-perplexity -f TEXT -c N_CTX`), so a hone model's figure
// can be set beside the one llama.cpp users quote. The text is tokenized whole, as llama.cpp
// tokenizes a prompt with its special tokens (BOS first when the tokenizer adds one); the ids are
// cut into n_chunk = n_tokens / n_ctx chunks of n_ctx (the tail is dropped); each chunk is run
// on its own from position 0 with its first id replaced by BOS, and only its second half is
// scored: the logits at positions n_ctx/2 .. n_ctx-2 against the ids after them (n_ctx/2 - 1
// tokens a chunk). The result is exp of the mean negative log-likelihood over every scored token.
#pragma once

#include <cstdint>
#include <string>

#include "data/tokenizer.h"
#include "lora/lora.h"
#include "model/transformer.h"

namespace hone {

struct LlamaPerplexity {
  double perplexity = 0;   // exp(mean NLL), llama.cpp's "Final estimate: PPL"
  double uncertainty = 0;  // its "+/-": ppl * the standard error of the mean NLL
  double mean_nll = 0;
  int64_t chunks = 0;  // chunks scored
  int64_t scored = 0;  // tokens scored: chunks * (n_ctx - n_ctx/2 - 1)
  int64_t tokens = 0;  // ids of the whole text
};

// The protocol on `text`, at most `max_chunks` chunks (<= 0: all), `batch` chunks a forward pass.
// `adapters` (optional) are run with dropout off. Throws hone::Error when n_ctx < 4, exceeds the
// model's context, or the text gives fewer than 2 * n_ctx ids (llama.cpp's own minimum).
LlamaPerplexity llama_perplexity(const Transformer& model, LoraAdapters* adapters,
                                 const Tokenizer& tokenizer, const std::string& text, int64_t n_ctx,
                                 int64_t max_chunks, int64_t batch);

}  // namespace hone
