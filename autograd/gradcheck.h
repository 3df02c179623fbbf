// Central-difference gradient check in f64, for the ops' tests.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/tape.h"

namespace hone {

// Builds the output from the inputs. Called once with a tape (the analytic pass) and then with a
// null tape for every perturbed evaluation, so it must be a pure function of the inputs' values
// (an op that draws random numbers must seed its own Rng inside fn).
using GradcheckFn = std::function<Var(Tape*, const std::vector<Var>&)>;

// For a fixed random r (standard normal, from `seed`, shaped like y) compares the analytic
// gradient of L = Σ y·r (Tape::backward_from(y, r)) with (L(x+eps) − L(x−eps)) / 2eps, for every
// element of every input with requires_grad. Inputs must be F64. Returns the largest error
//   |analytic − numeric| / max(1, |numeric|)
// i.e. absolute for small gradients and relative for large ones. `worst`, when given, receives
// where that error occurred. Inputs' existing gradients are zeroed first; values are restored.
double gradcheck(const GradcheckFn& fn, const std::vector<Var>& inputs, double eps = 1e-6,
                 uint64_t seed = 0x5eed, std::string* worst = nullptr);

}  // namespace hone
