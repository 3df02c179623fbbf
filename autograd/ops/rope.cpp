// RoPE: the inverse frequencies (with HF's rope_scaling) and the rotate-half op. Saves only the
// positions and frequencies: the backward is the rotation by −angle.
#include "autograd/kernels/rope.h"

#include <cmath>
#include <memory>
#include <numbers>

#include "autograd/ops.h"
#include "autograd/ops/common.h"

namespace hone {

using namespace ops_detail;

std::vector<double> rope_inv_freq(int64_t head_dim, double theta, const RopeScaling& scaling) {
  if (head_dim <= 0 || head_dim % 2 != 0)
    throw Error("rope_inv_freq: head_dim must be even and > 0 (got " + std::to_string(head_dim) +
                ")");
  if (!(theta > 0)) throw Error("rope_inv_freq: theta must be > 0");
  // Computed in double; HF computes in float32, so values agree to ~1e-7 relative.
  std::vector<double> inv(static_cast<size_t>(head_dim / 2));
  for (int64_t i = 0; i < head_dim / 2; ++i)
    inv[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(head_dim));
  const std::string& type = scaling.type;
  if (type.empty() || type == "default") return inv;
  if (!(scaling.factor > 0)) throw Error("rope_scaling: factor must be > 0");
  if (type == "linear") {  // HF "linear" divides positions by factor, i.e. frequencies
    for (double& f : inv) f /= scaling.factor;
    return inv;
  }
  if (type != "llama3")
    throw Error("rope_scaling: type '" + type + "' is not supported (use llama3, linear or none)");
  const double orig = static_cast<double>(scaling.original_max_position_embeddings);
  const double lo = scaling.low_freq_factor, hi = scaling.high_freq_factor;
  if (!(hi > lo)) throw Error("rope_scaling: high_freq_factor must exceed low_freq_factor");
  const double low_freq_wavelen = orig / lo, high_freq_wavelen = orig / hi;
  for (double& f : inv) {
    const double wavelen = 2.0 * std::numbers::pi / f;
    if (wavelen > low_freq_wavelen) {
      f /= scaling.factor;
    } else if (wavelen >= high_freq_wavelen) {  // medium band: interpolate
      const double smooth = (orig / wavelen - lo) / (hi - lo);
      f = (1.0 - smooth) * f / scaling.factor + smooth * f;
    }
  }
  return inv;
}

Var rope(Tape* t, const Var& x, const std::vector<double>& inv_freq,
         const std::vector<int32_t>& pos, int64_t n_heads) {
  require_compute("rope", "x", x);
  if (n_heads <= 0 || x.value().ndim() < 1 || x.shape().back() % n_heads != 0)
    fail("rope", "x " + shape_str(x.shape()) + " cannot be split into " + std::to_string(n_heads) +
                     " heads");
  const int64_t D = x.shape().back() / n_heads;
  const int64_t N = x.value().numel() / (n_heads * D);
  if (D % 2 != 0 || static_cast<int64_t>(inv_freq.size()) != D / 2)
    fail("rope", "head_dim " + std::to_string(D) + " needs an even head_dim and " +
                     std::to_string(D / 2) + " inverse frequencies (got " +
                     std::to_string(inv_freq.size()) + ")");
  if (static_cast<int64_t>(pos.size()) != N)
    fail("rope", "x " + shape_str(x.shape()) + " has " + std::to_string(N) + " rows but " +
                     std::to_string(pos.size()) + " positions were given");
  Tensor y = Tensor::empty(x.dtype(), x.shape());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    kernels::rope_fwd<T>(N, n_heads, D, x.value().data<T>(), pos.data(), inv_freq.data(),
                         y.data<T>());
  });
  const bool rg = needs_grad(t, {&x});
  Var out(std::move(y), rg);
  if (rg) {
    auto saved =
        std::make_shared<std::pair<std::vector<double>, std::vector<int32_t>>>(inv_freq, pos);
    t->record([t, x, out, saved, N, n_heads, D] {
      if (!out.has_grad()) return;
      dispatch(out.dtype(), [&](auto z) {
        using T = decltype(z);
        bool fresh = false;
        T* dx = t->grad(x, &fresh).data<T>();
        kernels::rope_bwd<T>(N, n_heads, D, out.grad().data<T>(), saved->second.data(),
                             saved->first.data(), dx, fresh);
      });
    });
  }
  return out;
}

}  // namespace hone
