#include "recipes/parallel/layout.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "autograd/error.h"

namespace hone {

namespace {

// "2", "2 or 3", "2, 3 or 6"
std::string or_list(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i)
    s += (i == 0 ? "" : i + 1 == v.size() ? " or " : ", ") + std::to_string(v[i]);
  return s;
}

// The data-parallel degrees that share out `m` micro-batches: its divisors.
std::vector<int64_t> divisors(int64_t m) {
  std::vector<int64_t> d;
  for (int64_t i = 1; i <= m; ++i)
    if (m % i == 0) d.push_back(i);
  return d;
}

}  // namespace

RankLayout make_rank_layout(int64_t ranks, int64_t stages, int64_t grad_accum, int64_t num_layers,
                            const std::string& ranks_flag) {
  if (stages < 1) throw Error("pipeline stages must be > 0 (got " + std::to_string(stages) + ")");
  if (ranks < 1) throw Error(ranks_flag + " must be > 0 (got " + std::to_string(ranks) + ")");
  if (grad_accum < 1)
    throw Error("training.grad_accum must be > 0 (got " + std::to_string(grad_accum) + ")");
  if (num_layers > 0 && stages > num_layers)
    throw Error(std::to_string(stages) + " pipeline stages exceed the model's " +
                std::to_string(num_layers) + " blocks (a stage holds at least one block); use " +
                std::to_string(num_layers) + " stages or fewer");
  const std::vector<int64_t> degrees = divisors(grad_accum);
  if (ranks % stages != 0) {
    // The nearest rank counts below and above that are whole layouts: S × a divisor of M.
    std::vector<int64_t> near;
    int64_t below = 0, above = 0;
    for (int64_t d : degrees) {
      if (stages * d < ranks) below = stages * d;
      if (stages * d > ranks && above == 0) above = stages * d;
    }
    if (below > 0) near.push_back(below);
    if (above > 0) near.push_back(above);
    throw Error(ranks_flag + " " + std::to_string(ranks) + " is not a multiple of the " +
                std::to_string(stages) + " pipeline stages; use " + ranks_flag + " " +
                or_list(near));
  }
  const int64_t data = ranks / stages;
  if (grad_accum % data != 0) {
    // The (up to) three divisors of M nearest the asked degree, as rank counts, and the two
    // multiples of the degree nearest M.
    std::vector<int64_t> near(degrees.begin() + 1, degrees.end());  // D = 1 is no longer parallel
    std::stable_sort(near.begin(), near.end(),
                     [&](int64_t a, int64_t b) { return std::abs(a - data) < std::abs(b - data); });
    if (near.size() > 3) near.resize(3);
    std::sort(near.begin(), near.end());
    for (int64_t& d : near) d *= stages;
    std::vector<int64_t> accum;
    if (grad_accum / data > 0) accum.push_back(grad_accum / data * data);
    accum.push_back((grad_accum / data + 1) * data);
    std::string msg = "grad_accum " + std::to_string(grad_accum) + " does not divide among " +
                      std::to_string(data) + " data-parallel ranks; use ";
    if (!near.empty()) msg += ranks_flag + " " + or_list(near) + ", or ";
    throw Error(msg + "training.grad_accum=" + or_list(accum));
  }
  return {ranks, stages, data};
}

LayerRange stage_layers(int64_t num_layers, int64_t stages, int64_t stage) {
  return pipeline_stage_layers(num_layers, static_cast<int>(stages), static_cast<int>(stage));
}

int64_t stage_of_layer(int64_t num_layers, int64_t stages, int64_t layer) {
  for (int64_t s = 0; s < stages; ++s) {
    const LayerRange r = stage_layers(num_layers, stages, s);
    if (layer < r.last) return s;
  }
  return stages - 1;
}

int64_t micro_batches_in_flight(int64_t local_micro_batches, int64_t stages, int64_t stage) {
  return std::min(local_micro_batches, stages - stage);
}

int64_t pp_bytes_sent(int64_t local_micro_batches, int64_t hidden_state_bytes, int64_t stages,
                      int64_t stage) {
  const int64_t directions = (stage + 1 < stages ? 1 : 0) + (stage > 0 ? 1 : 0);
  return local_micro_batches * hidden_state_bytes * directions;
}

Slice dp_slice(int64_t params, int64_t data, int64_t j) {
  return {j * params / data, (j + 1) * params / data};
}

int64_t dp_scatter_bytes_sent(int64_t params, int64_t data, int64_t k, int64_t j) {
  if (data <= 1) return 0;
  return k * (params - dp_slice(params, data, j).size()) * 4;
}

int64_t dp_allgather_bytes_sent(int64_t params, int64_t data, int64_t j) {
  if (data <= 1) return 0;
  return (data - 1) * dp_slice(params, data, j).size() * 4;
}

int64_t dp_bytes_sent(int64_t params, int64_t data, int64_t k, int64_t j) {
  return dp_scatter_bytes_sent(params, data, k, j) + dp_allgather_bytes_sent(params, data, j);
}

int64_t dp_buffer_bytes(int64_t params, int64_t data, int64_t k) {
  if (data <= 1) return k > 1 ? params * 4 : 0;  // one micro-batch: the backward's own gradient
  int64_t largest = 0;
  for (int64_t j = 0; j < data; ++j) largest = std::max(largest, dp_slice(params, data, j).size());
  return k * params * 4 + k * data * largest * 4;
}

}  // namespace hone
