#include "recipes/generate.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "autograd/kernels/bf16_gemm.h"
#include "autograd/kernels/compute_choice.h"
#include "autograd/rng.h"
#include "data/tokenizer.h"
#include "lora/peft.h"
#include "model/io/finite_weights.h"
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
std::string show(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

void check_generate_options(const GenerateOptions& opt) {
  if (opt.max_new_tokens < 0)
    throw Error("--max-new-tokens: must be >= 0 (got " + std::to_string(opt.max_new_tokens) + ")");
  // Sampling runs in float: a value that is finite only as a double is refused too.
  if (!std::isfinite(static_cast<float>(opt.temperature)) || opt.temperature < 0)
    throw Error("--temperature: must be a finite number >= 0, 0 for greedy (got " +
                show(opt.temperature) + ")");
  if (opt.top_k < 0)
    throw Error("--top-k: must be >= 0, 0 for off (got " + std::to_string(opt.top_k) + ")");
  if (!(opt.top_p > 0 && opt.top_p <= 1) || !(static_cast<float>(opt.top_p) > 0))
    throw Error("--top-p: must be in (0, 1], 1 for off (got " + show(opt.top_p) + ")");
  parse_weight_dtype(opt.weight_dtype);
}

GenerateResult run_generate(const GenerateOptions& opt,
                            const std::function<void(const std::string&)>& on_piece) {
  check_generate_options(opt);
  const kernels::ScopedBf16Products compute(
      kernels::choose_compute(opt.compute_dtype, kernels::cpu_kind(), "--compute-dtype").bf16);
  ModelFiles files = load_model_files(opt.model);
  check_finite_weights(files.tensors, files.source);
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

  // The prompt as the user wrote it: without the BOS a tokenizer.json's decode would spell out.
  r.text = tok->decode(tok->encode(opt.prompt, false, false));
  if (on_piece) on_piece(r.text);
  const auto& eos = files.config.eos_token_ids;
  std::vector<int32_t> feed = r.prompt_ids;
  int32_t prev = r.prompt_ids.back();
  bool at_eos = false;
  int64_t i = 0;
  for (; i < opt.max_new_tokens && cache.len + 1 <= cache.capacity(); ++i) {
    Tensor logits = model.forward_cached(cache, feed);  // (feed, V)
    const float* last = logits.data<float>() + (logits.dim(0) - 1) * logits.dim(1);
    int32_t next = sample_token(last, logits.dim(1), sp, rng, scratch);
    // llama2.c models delimit sequences with BOS; HF models end with EOS.
    if (next == tok->bos_id() || std::find(eos.begin(), eos.end(), next) != eos.end()) {
      at_eos = true;
      break;
    }
    r.new_ids.push_back(next);
    std::string piece = tok->decode_token(prev, next);
    r.text += piece;
    if (on_piece) on_piece(piece);
    prev = next;
    feed.assign(1, next);
  }
  r.context = ctx;
  r.stopped_at_context = !at_eos && i < opt.max_new_tokens;
  return r;
}

}  // namespace hone
