#include "recipes/generate.h"

#include <algorithm>

#include "autograd/rng.h"
#include "data/tokenizer.h"
#include "lora/peft.h"
#include "model/io/model_files.h"
#include "model/sampling.h"
#include "model/transformer.h"
#include "recipes/model_tokenizer.h"
#include "recipes/run_setup.h"

namespace hone {

namespace {
DType parse_weight_dtype(const std::string& s) {
  try {
    return weight_dtype_from(s);
  } catch (const Error&) {
    throw Error("--dtype: expected f32, bf16, f16, q8_0 or q4_0 (got \"" + s + "\")");
  }
}
}  // namespace

GenerateResult run_generate(const GenerateOptions& opt,
                            const std::function<void(const std::string&)>& on_piece) {
  if (opt.max_new_tokens < 0) throw Error("--max-new-tokens: must be >= 0");
  if (opt.temperature < 0) throw Error("--temperature: must be >= 0");
  ModelFiles files = load_model_files(opt.model);
  Transformer model(files.config, files.tensors, parse_weight_dtype(opt.weight_dtype));
  std::unique_ptr<LoraAdapters> adapters;
  if (!opt.adapter.empty()) adapters = load_peft_adapter(opt.adapter, model);
  std::unique_ptr<Tokenizer> tok = tokenizer_for_model(opt.model, opt.tokenizer);
  if (tok->vocab_size() != files.config.vocab_size)
    throw Error((opt.tokenizer.empty() ? opt.model : opt.tokenizer) + ": vocabulary of " +
                std::to_string(tok->vocab_size()) + " tokens does not match the model's " +
                std::to_string(files.config.vocab_size));

  GenerateResult r;
  r.prompt_ids = tok->encode(opt.prompt, /*add_bos=*/true, /*add_eos=*/false);
  const int64_t ctx = files.config.max_position_embeddings;
  const int64_t total = static_cast<int64_t>(r.prompt_ids.size()) + opt.max_new_tokens;
  if (static_cast<int64_t>(r.prompt_ids.size()) > ctx)
    throw Error("prompt of " + std::to_string(r.prompt_ids.size()) +
                " tokens exceeds the model's context of " + std::to_string(ctx));
  KVCache cache = model.make_cache(std::min(total, ctx));

  SamplingParams sp;
  sp.temperature = static_cast<float>(opt.temperature);
  sp.top_k = opt.top_k;
  sp.top_p = static_cast<float>(opt.top_p);
  sp.seed = opt.seed;
  Rng rng(opt.seed);
  std::vector<TokenProb> scratch;

  r.text = tok->decode(r.prompt_ids);
  if (on_piece) on_piece(r.text);
  const auto& eos = files.config.eos_token_ids;
  std::vector<int32_t> feed = r.prompt_ids;
  int32_t prev = r.prompt_ids.back();
  for (int64_t i = 0; i < opt.max_new_tokens && cache.len + 1 <= cache.capacity(); ++i) {
    Tensor logits = model.forward_cached(cache, feed);  // (feed, V)
    const float* last = logits.data<float>() + (logits.dim(0) - 1) * logits.dim(1);
    int32_t next = sample_token(last, logits.dim(1), sp, rng, scratch);
    // llama2.c models delimit sequences with BOS; HF models end with EOS.
    if (next == tok->bos_id() || std::find(eos.begin(), eos.end(), next) != eos.end()) break;
    r.new_ids.push_back(next);
    std::string piece = tok->decode_token(prev, next);
    r.text += piece;
    if (on_piece) on_piece(piece);
    prev = next;
    feed.assign(1, next);
  }
  return r;
}

}  // namespace hone
