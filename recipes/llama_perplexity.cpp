#include "recipes/llama_perplexity.h"

#include <algorithm>
#include <cmath>

#include "autograd/error.h"

namespace hone {

LlamaPerplexity llama_perplexity(const Transformer& model, LoraAdapters* adapters,
                                 const Tokenizer& tokenizer, const std::string& text, int64_t n_ctx,
                                 int64_t max_chunks, int64_t batch) {
  const ModelConfig& cfg = model.config();
  if (n_ctx < 4) throw Error("--ctx: must be at least 4 (got " + std::to_string(n_ctx) + ")");
  if (n_ctx > cfg.max_position_embeddings)
    throw Error("--ctx: " + std::to_string(n_ctx) + " exceeds the model's context of " +
                std::to_string(cfg.max_position_embeddings));
  // llama.cpp: common_tokenize(ctx, text, add_special = true); an EOS it would not add either.
  const std::vector<int32_t> ids = tokenizer.encode(text, true, false);
  LlamaPerplexity r;
  r.tokens = static_cast<int64_t>(ids.size());
  if (r.tokens < 2 * n_ctx)
    throw Error("the text gives " + std::to_string(r.tokens) + " tokens; llama-perplexity needs " +
                "at least 2 * ctx = " + std::to_string(2 * n_ctx));
  int64_t n_chunk = r.tokens / n_ctx;
  if (max_chunks > 0) n_chunk = std::min(n_chunk, max_chunks);
  // llama.cpp puts BOS first in every chunk when its vocabulary adds one (add_bos_token); hone's
  // tokenizers say so by putting it in front of the text.
  const int32_t bos = tokenizer.bos_id();
  const bool chunk_bos = bos >= 0 && !ids.empty() && ids[0] == bos;
  const int64_t first = n_ctx / 2;
  const int64_t V = cfg.vocab_size;
  batch = std::max<int64_t>(1, batch);
  if (adapters) adapters->set_training(false);
  double nll = 0, nll2 = 0;
  for (int64_t c0 = 0; c0 < n_chunk; c0 += batch) {
    const int64_t B = std::min(batch, n_chunk - c0);
    std::vector<int32_t> in(ids.begin() + c0 * n_ctx, ids.begin() + (c0 + B) * n_ctx);  // (B*T)
    if (chunk_bos)
      for (int64_t b = 0; b < B; ++b) in[static_cast<size_t>(b * n_ctx)] = bos;
    const Var logits = model.forward(nullptr, in, B, n_ctx);  // (B*T, V)
    const Tensor lv = logits.value().to(DType::F64);  // F32 (F64 for an F64 model) as double
    const double* L = lv.data<double>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = first; j < n_ctx - 1; ++j) {
        const int64_t row = b * n_ctx + j;
        // Scored against the text's own next id (only position 0 was replaced by BOS).
        const int32_t target = ids[static_cast<size_t>((c0 + b) * n_ctx + j + 1)];
        const double* l = L + row * V;  // (V)
        const double mx = *std::max_element(l, l + V);
        double sum = 0;
        for (int64_t v = 0; v < V; ++v) sum += std::exp(l[v] - mx);
        const double x = mx + std::log(sum) - l[target];  // -log softmax(logits)[target]
        nll += x;
        nll2 += x * x;
      }
  }
  if (adapters) adapters->set_training(true);
  r.chunks = n_chunk;
  r.scored = n_chunk * (n_ctx - first - 1);
  const double n = static_cast<double>(r.scored);
  r.mean_nll = nll / n;
  r.perplexity = std::exp(r.mean_nll);
  // llama.cpp's uncertainty: the standard error of the mean NLL, carried to the perplexity.
  const double var = nll2 / n - r.mean_nll * r.mean_nll;
  r.uncertainty = var > 0 && n > 1 ? std::sqrt(var / (n - 1)) * r.perplexity : 0;
  return r;
}

}  // namespace hone
