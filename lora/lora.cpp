#include "lora/lora.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace hone {

const std::vector<std::string>& lora_target_kinds() {
  static const std::vector<std::string> kinds = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};
  return kinds;
}

double LoraConfig::scaling() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

void LoraConfig::validate() const {
  if (rank <= 0) throw Error("lora.rank: must be > 0 (got " + std::to_string(rank) + ")");
  if (!(dropout >= 0.0 && dropout < 1.0))
    throw Error("lora.dropout: must be in [0, 1) (got " + std::to_string(dropout) + ")");
  if (targets.empty()) throw Error("lora.targets: must name at least one projection");
  const auto& kinds = lora_target_kinds();
  for (const auto& t : targets) {
    if (t == "all-linear" && targets.size() == 1) continue;
    if (std::find(kinds.begin(), kinds.end(), t) == kinds.end())
      throw Error("lora.targets: unknown target \"" + t +
                  "\" (expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj "
                  "or all-linear alone)");
  }
}

LoraLinear::LoraLinear(std::unique_ptr<Linear> base, Var a, Var b, Var m, double scaling,
                       double dropout, Rng* rng)
    : base_(std::move(base)),
      a_(std::move(a)),
      b_(std::move(b)),
      m_(std::move(m)),
      scaling_(scaling),
      dropout_(dropout),
      rng_(rng) {}

Var LoraLinear::dora_forward(Tape* t, const Var& x, const Var& residual) {
  // DoRA normalises W + s·B·A, so the W under it must be the frozen base itself.
  if (!dynamic_cast<const FrozenLinear*>(base_.get()))
    throw Error("lora.dora: DoRA needs a plain frozen projection under it, not another adapter");
  Var xin = (training_ && dropout_ > 0.0) ? hone::dropout(t, x, dropout_, *rng_) : x;
  // Recomputed every forward from the current A and B (and again when a checkpointed block
  // replays), never differentiated: PEFT's detached norm.
  const Tensor norm = dora_weight_norm(base_->weight().value(), a_.value(), b_.value(), scaling_);
  return dora_linear(t, x, base_->weight(), base_->bias(), xin, a_, b_, m_, norm, scaling_,
                     residual);
}

Var LoraLinear::forward_add(Tape* t, const Var& x, const Var& residual) {
  if (m_.defined()) return dora_forward(t, x, residual);
  if (!dynamic_cast<const FrozenLinear*>(base_.get())) return Linear::forward_add(t, x, residual);
  Var xin = (training_ && dropout_ > 0.0) ? hone::dropout(t, x, dropout_, *rng_) : x;
  return lora_linear(t, x, base_->weight(), base_->bias(), xin, a_, b_, scaling_, residual);
}

Var LoraLinear::forward(Tape* t, const Var& x) {
  if (m_.defined()) return dora_forward(t, x, Var());
  Var xin = (training_ && dropout_ > 0.0) ? hone::dropout(t, x, dropout_, *rng_) : x;
  // A plain frozen base fuses with its update; anything else (an adapter over an adapter) keeps
  // the chain of ops.
  if (dynamic_cast<const FrozenLinear*>(base_.get()))
    return lora_linear(t, x, base_->weight(), base_->bias(), xin, a_, b_, scaling_);
  Var y = base_->forward(t, x);  // (N, out)
  Var low = linear(t, xin, a_);  // (N, r)
  Var up = linear(t, low, b_);   // (N, out)
  return add(t, y, scale(t, up, scaling_));
}

std::string LoraAdapters::peft_name(const std::string& module, char which) {
  if (which == 'm') return "base_model.model." + module + ".lora_magnitude_vector";
  return "base_model.model." + module + ".lora_" + std::string(1, which) + ".weight";
}

namespace {

// (in, out) features of a projection kind in a block of `c`.
std::pair<int64_t, int64_t> projection_shape(const ModelConfig& c, const std::string& kind) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), ff = c.intermediate_size;
  if (kind == "q_proj") return {h, q};
  if (kind == "k_proj" || kind == "v_proj") return {h, kv};
  if (kind == "o_proj") return {q, h};
  if (kind == "gate_proj" || kind == "up_proj") return {h, ff};
  return {ff, h};  // down_proj
}

}  // namespace

LoraAdapters::LoraAdapters(Transformer& model, const LoraConfig& cfg)
    : cfg_(cfg), dropout_rng_(cfg.seed ^ 0x5eed0d0d5eedull) {
  build(model.config(), model.layer_range(), model.compute_dtype(), &model);
  // With activation checkpointing the model replays this generator's draws per block.
  model.set_dropout_rng(&dropout_rng_);
}

LoraAdapters::LoraAdapters(const ModelConfig& model, const LoraConfig& cfg, DType dtype)
    : cfg_(cfg), dropout_rng_(cfg.seed ^ 0x5eed0d0d5eedull) {
  build(model, LayerRange{}.resolved(model.num_layers), dtype, nullptr);
}

void LoraAdapters::build(const ModelConfig& mc, const LayerRange& range, DType dtype,
                         Transformer* model) {
  cfg_.validate();
  const bool all = cfg_.targets.size() == 1 && cfg_.targets[0] == "all-linear";
  auto wanted = [&](const std::string& kind, int64_t layer) {
    if (!all && std::find(cfg_.targets.begin(), cfg_.targets.end(), kind) == cfg_.targets.end())
      return false;
    return cfg_.layers.empty() ||
           std::find(cfg_.layers.begin(), cfg_.layers.end(), layer) != cfg_.layers.end();
  };
  for (int l : cfg_.layers)
    if (l < 0 || l >= mc.num_layers)
      throw Error("lora.layers: layer " + std::to_string(l) + " does not exist (model has " +
                  std::to_string(mc.num_layers) + ")");

  // The whole model's arena is layer-major (layers in order, within a layer the kinds in
  // lora_target_kinds() order, A then B): a pipeline stage's arena is the slice for its layers,
  // which starts after the layers before it, and its A draws come after theirs.
  struct Module {
    std::string name;
    int64_t in, out;
    std::unique_ptr<Linear>* slot;  // null without a model
  };
  std::vector<Module> chosen;
  int64_t slice = 0, a_draws_before = 0;
  for (int64_t l = 0; l < mc.num_layers; ++l)
    for (const std::string& kind : lora_target_kinds()) {
      if (!wanted(kind, l)) continue;
      const auto [in, out] = projection_shape(mc, kind);
      const int64_t count = cfg_.rank * (in + out) + (cfg_.dora ? out : 0);
      full_parameters_ += count;
      ++full_modules_;
      if (l < range.first) {
        arena_offset_ += count;
        a_draws_before += cfg_.rank * in;
      } else if (l < range.last) {
        slice += count;
        if (!model) {
          // Named as Transformer::linears() names them.
          const bool attn =
              kind == "q_proj" || kind == "k_proj" || kind == "v_proj" || kind == "o_proj";
          const std::string part = attn ? ".self_attn." : ".mlp.";
          chosen.push_back({"model.layers." + std::to_string(l) + part + kind, in, out, nullptr});
        }
      }
    }
  if (full_parameters_ == 0) throw Error("lora.targets: no projection of the model matches");
  if (model) {
    for (auto& nl : model->linears())
      if (wanted(nl.kind, nl.layer))
        chosen.push_back({nl.name, (*nl.slot)->in_features(), (*nl.slot)->out_features(), nl.slot});
  }
  int64_t total = 0;
  for (const Module& m : chosen) total += cfg_.rank * (m.in + m.out) + (cfg_.dora ? m.out : 0);
  if (total != slice)
    throw Error("lora: the held projections take " + std::to_string(total) +
                " parameters, the config implies " + std::to_string(slice));

  // The arenas have the model's compute dtype: F32, or F64 for whole-model reference checks.
  values_ = Tensor::zeros(dtype, {total});
  grads_ = Tensor::zeros(dtype, {total});
  // A: PEFT's default, kaiming_uniform_(a=√5) = U(-1/√in, 1/√in); B: zeros, so the adapted
  // model starts equal to the base. Drawn sequentially from one seeded stream (in arena order).
  Rng init(cfg_.seed);
  init.skip(static_cast<uint64_t>(a_draws_before));  // one draw per element of A
  int64_t off = 0;
  const double s = cfg_.scaling();
  for (Module& m : chosen) {
    const int64_t in = m.in, out = m.out;
    const int64_t na = cfg_.rank * in, nb = out * cfg_.rank;
    Tensor av = values_.slice0(off, off + na).view({cfg_.rank, in});
    Tensor ag = grads_.slice0(off, off + na).view({cfg_.rank, in});
    off += na;
    Tensor bv = values_.slice0(off, off + nb).view({out, cfg_.rank});
    Tensor bg = grads_.slice0(off, off + nb).view({out, cfg_.rank});
    off += nb;
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    for (int64_t i = 0; i < na; ++i) {
      const double u = init.uniform(-bound, bound);
      if (av.dtype() == DType::F64)
        av.data<double>()[i] = u;
      else
        av.data<float>()[i] = static_cast<float>(u);
    }
    Var a = Var::with_grad_buffer(av, ag);
    Var b = Var::with_grad_buffer(bv, bg);
    Var mag;
    if (cfg_.dora) {
      Tensor mv = values_.slice0(off, off + out);
      Tensor mg = grads_.slice0(off, off + out);
      off += out;
      // PEFT's initialisation: ‖W + s·B·A‖ per row with B = 0, computed as the forward computes
      // its norm, so g = m / norm is exactly 1 at the start and the model starts as the base.
      if (m.slot) {
        const Tensor n = dora_weight_norm((*m.slot)->weight().value(), av, bv, s);
        std::memcpy(mv.raw(), n.raw(), n.nbytes());
      }
      mag = Var::with_grad_buffer(mv, mg);
    }
    if (m.slot) {
      auto layer = std::make_unique<LoraLinear>(std::move(*m.slot), a, b, mag, s, cfg_.dropout,
                                                &dropout_rng_);
      layers_.push_back(layer.get());
      *m.slot = std::move(layer);
    }
    tensors_.push_back({m.name, a, b, mag});
  }
}

void LoraAdapters::set_training(bool on) {
  for (auto* l : layers_) l->set_training(on);
}

}  // namespace hone
