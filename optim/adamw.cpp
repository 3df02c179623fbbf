#include "optim/adamw.h"

#include <tbb/parallel_for.h>

#include <cmath>
#include <cstring>

namespace hone {

AdamW::AdamW(Tensor params, Tensor grads, const AdamWConfig& cfg)
    : p_(std::move(params)), g_(std::move(grads)), cfg_(cfg) {
  if (p_.dtype() != DType::F32 || g_.dtype() != DType::F32 || p_.shape() != g_.shape())
    throw Error("AdamW: parameters and gradients must be F32 arenas of the same shape");
  m_ = Tensor::zeros(DType::F32, p_.shape());
  v_ = Tensor::zeros(DType::F32, p_.shape());
}

void AdamW::step(double lr) {
  ++t_;
  const double bc1 = 1.0 - std::pow(cfg_.beta1, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(cfg_.beta2, static_cast<double>(t_));
  const float step_size = static_cast<float>(lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float decay = static_cast<float>(1.0 - lr * cfg_.weight_decay);
  const float b1 = static_cast<float>(cfg_.beta1), b2 = static_cast<float>(cfg_.beta2);
  const float eps = static_cast<float>(cfg_.eps);
  float* p = p_.data<float>();
  const float* g = g_.data<float>();
  float* m = m_.data<float>();
  float* v = v_.data<float>();
  // Elementwise and independent: any partition gives bitwise the same result.
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, p_.numel(), 1 << 14),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t i = r.begin(); i < r.end(); ++i) {
                        p[i] *= decay;
                        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
                        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
                        p[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
                      }
                    });
}

std::map<std::string, Tensor> AdamW::state() const {
  return {{"exp_avg", m_.clone()}, {"exp_avg_sq", v_.clone()}, {"step", step_tensor(t_)}};
}

void AdamW::load_state(const std::map<std::string, Tensor>& state) {
  const int64_t t =
      check_optimizer_state("AdamW.load_state", state, {"exp_avg", "exp_avg_sq"}, p_.shape());
  std::memcpy(m_.raw(), state.at("exp_avg").raw(), m_.nbytes());
  std::memcpy(v_.raw(), state.at("exp_avg_sq").raw(), v_.nbytes());
  t_ = t;
}

}  // namespace hone
