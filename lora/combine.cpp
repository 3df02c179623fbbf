#include "lora/combine.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <sstream>

#include "autograd/rng.h"
#include "lora/truncated_svd.h"

namespace hone {

namespace {

struct MethodName {
  CombineMethod method;
  const char* name;
};
constexpr MethodName kMethods[] = {
    {CombineMethod::kLinear, "linear"},
    {CombineMethod::kCat, "cat"},
    {CombineMethod::kSvd, "svd"},
    {CombineMethod::kTies, "ties"},
    {CombineMethod::kTiesSvd, "ties_svd"},
    {CombineMethod::kDareLinear, "dare_linear"},
    {CombineMethod::kDareLinearSvd, "dare_linear_svd"},
    {CombineMethod::kDareTies, "dare_ties"},
    {CombineMethod::kDareTiesSvd, "dare_ties_svd"},
    {CombineMethod::kMagnitudePrune, "magnitude_prune"},
    {CombineMethod::kMagnitudePruneSvd, "magnitude_prune_svd"},
};

// How task tensors are combined (a method and its _svd form share the rule).
enum class Rule { kLinear, kMagnitudePrune, kTies, kDareLinear, kDareTies };

Rule rule_of(CombineMethod m) {
  switch (m) {
    case CombineMethod::kTies:
    case CombineMethod::kTiesSvd:
      return Rule::kTies;
    case CombineMethod::kDareLinear:
    case CombineMethod::kDareLinearSvd:
      return Rule::kDareLinear;
    case CombineMethod::kDareTies:
    case CombineMethod::kDareTiesSvd:
      return Rule::kDareTies;
    case CombineMethod::kMagnitudePrune:
    case CombineMethod::kMagnitudePruneSvd:
      return Rule::kMagnitudePrune;
    default:
      return Rule::kLinear;
  }
}

std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

std::vector<double> to_f64(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = t.item(i);
  return v;
}

Tensor to_f32(const std::vector<double>& v, Shape shape) {
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  for (size_t i = 0; i < v.size(); ++i) t.data<float>()[i] = static_cast<float>(v[i]);
  return t;
}

int sign_of(double v) {
  return v > 0 ? 1 : (v < 0 ? -1 : 0);
}

// PEFT's magnitude_based_pruning: the ⌊density·n⌋ entries of largest |value| survive.
std::vector<double> magnitude_pruned(const std::vector<double>& t, double density) {
  if (density >= 1) return t;
  const size_t k = static_cast<size_t>(density * static_cast<double>(t.size()));
  std::vector<size_t> idx(t.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                    [&](size_t x, size_t y) {
                      const double ax = std::abs(t[x]), ay = std::abs(t[y]);
                      return ax > ay || (ax == ay && x < y);
                    });
  std::vector<double> out(t.size(), 0.0);
  for (size_t i = 0; i < k; ++i) out[idx[i]] = t[idx[i]];
  return out;
}

// PEFT's random_pruning with rescale: each entry kept with probability density, divided by it.
std::vector<double> dare_pruned(const std::vector<double>& t, double density, uint64_t seed) {
  if (density >= 1) return t;
  Rng rng(seed);
  std::vector<double> out(t.size(), 0.0);
  for (size_t i = 0; i < t.size(); ++i)
    if (rng.uniform() < density) out[i] = t[i] / density;
  return out;
}

// One set of task tensors (same shape), weights c_i, combined by `rule`; tensors[i] belongs to
// the adapter at list position index[i] (DARE's stream).
std::vector<double> combine_tasks(std::vector<std::vector<double>> tasks,
                                  const std::vector<double>& c, const std::vector<int>& index,
                                  Rule rule, const CombineOptions& o, const std::string& module,
                                  const std::string& tag) {
  const double density = o.density.value_or(1.0);
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (rule == Rule::kMagnitudePrune || rule == Rule::kTies)
      tasks[i] = magnitude_pruned(tasks[i], density);
    if (rule == Rule::kDareLinear || rule == Rule::kDareTies)
      tasks[i] = dare_pruned(tasks[i], density, dare_stream_seed(o.seed, module, tag, index[i]));
  }
  const size_t n = tasks[0].size();
  std::vector<double> out(n, 0.0);
  const bool ties = rule == Rule::kTies || rule == Rule::kDareTies;
  for (size_t e = 0; e < n; ++e) {
    if (!ties) {
      double s = 0;
      for (size_t i = 0; i < tasks.size(); ++i) s += c[i] * tasks[i][e];
      out[e] = s;
      continue;
    }
    // Elect the sign (on the unweighted pruned tensors, as PEFT), then the disjoint mean.
    double vote = 0;
    for (const auto& t : tasks)
      vote += o.majority == MajoritySign::kTotal ? t[e] : static_cast<double>(sign_of(t[e]));
    const int elected = vote >= 0 ? 1 : -1;
    double s = 0, count = 0;
    for (size_t i = 0; i < tasks.size(); ++i)
      if (sign_of(tasks[i][e]) == elected) {
        s += c[i] * tasks[i][e];
        count += 1;
      }
    out[e] = s / std::max(count, 1.0);
  }
  return out;
}

std::string module_name(int layer, const std::string& kind) {
  const bool mlp = kind == "gate_proj" || kind == "up_proj" || kind == "down_proj";
  return "model.layers." + std::to_string(layer) + (mlp ? ".mlp." : ".self_attn.") + kind;
}

std::string kind_of(const std::string& module) {
  return module.substr(module.rfind('.') + 1);
}

int layer_of_module(const std::string& module) {
  const std::string p = "model.layers.";
  return std::stoi(module.substr(p.size(), module.find('.', p.size()) - p.size()));
}

std::vector<std::string> kinds_of(const LoraConfig& c) {
  if (c.targets.size() == 1 && c.targets[0] == "all-linear") return lora_target_kinds();
  return c.targets;
}

}  // namespace

CombineMethod parse_combine_method(const std::string& s, const std::string& what) {
  std::string all;
  for (const MethodName& m : kMethods) {
    if (s == m.name) return m.method;
    all += std::string(all.empty() ? "" : ", ") + m.name;
  }
  throw Error(what + ": unknown method \"" + s + "\" (expected one of " + all + ")");
}

std::string combine_method_name(CombineMethod m) {
  for (const MethodName& n : kMethods)
    if (n.method == m) return n.name;
  return "?";
}

MajoritySign parse_majority_sign(const std::string& s, const std::string& what) {
  if (s == "total") return MajoritySign::kTotal;
  if (s == "frequency") return MajoritySign::kFrequency;
  throw Error(what + ": expected total or frequency (got \"" + s + "\")");
}

double parse_density(const std::string& s, const std::string& what) {
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (s.empty() || !end || *end != '\0' || !(d > 0 && d <= 1))
    throw Error(what + ": expected a fraction of entries to keep in (0, 1] (got \"" + s + "\")");
  return d;
}

bool method_uses_density(CombineMethod m) {
  return rule_of(m) != Rule::kLinear;
}

bool method_is_svd(CombineMethod m) {
  return m == CombineMethod::kSvd || m == CombineMethod::kTiesSvd ||
         m == CombineMethod::kDareLinearSvd || m == CombineMethod::kDareTiesSvd ||
         m == CombineMethod::kMagnitudePruneSvd;
}

uint64_t dare_stream_seed(uint64_t seed, const std::string& module, const std::string& tag,
                          int adapter_index) {
  const std::string key = module + "/" + tag + "/" + std::to_string(adapter_index);
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64
  for (unsigned char ch : key) {
    h ^= ch;
    h *= 0x100000001b3ull;
  }
  return seed ^ h;
}

int64_t combined_rank(const std::vector<MergeAdapter>& adapters, const CombineOptions& o) {
  if (adapters.empty()) throw Error("--adapter: at least one adapter folder is required");
  const std::string name = combine_method_name(o.method);
  if (method_uses_density(o.method) && !o.density)
    throw Error("--density: method " + name +
                " needs --density (the fraction of entries each adapter keeps, in (0, 1])");
  if (!method_uses_density(o.method) && o.density)
    throw Error("--density: method " + name +
                " prunes nothing (only ties, dare_linear, dare_ties, magnitude_prune and their "
                "_svd forms take a density)");
  if (o.density && !(*o.density > 0 && *o.density <= 1))
    throw Error("--density: must be in (0, 1] (got " + fmt(*o.density) + ")");
  if (o.svd_rank < 0) throw Error("--svd-rank: must be > 0 (got " + fmt(o.svd_rank) + ")");
  if (o.svd_rank > 0 && !method_is_svd(o.method))
    throw Error("--svd-rank: only the svd methods (svd, ties_svd, ...) take it, not " + name);

  // A module adapted by several adapters must have the same (out, in) in each.
  std::map<std::string, std::pair<const MergeAdapter*, Shape>> seen;
  for (const MergeAdapter& ad : adapters)
    for (const auto& [module, f] : ad.modules) {
      const Shape oi{f.b.dim(0), f.a.dim(1)};
      auto [it, fresh] = seen.emplace(module, std::pair{&ad, oi});
      if (!fresh && it->second.second != oi)
        throw Error(ad.file + ": module " + module + " is " + shape_str(oi) + " (out, in), but " +
                    it->second.first->file + " has it " + shape_str(it->second.second) +
                    ": adapters of different base models cannot be combined");
    }

  // DoRA's magnitudes have no combination: PEFT's add_weighted_adapter copies use_dora from the
  // first adapter and re-initialises the magnitude from the combined weight, silently dropping
  // every trained m. Merging them one after the other (cat) is well defined.
  if (adapters.size() > 1 && o.method != CombineMethod::kCat)
    for (const MergeAdapter& ad : adapters)
      if (ad.config.dora)
        throw Error("--method " + name + ": " + ad.dir +
                    " is a DoRA adapter, and DoRA magnitude vectors cannot be combined (PEFT's "
                    "add_weighted_adapter drops them); merge DoRA adapters one after the other "
                    "with --method cat");
  int64_t sum = 0, max = 0;
  for (const MergeAdapter& ad : adapters) {
    sum += ad.config.rank;
    max = std::max(max, ad.config.rank);
  }
  if (adapters.size() == 1) return adapters[0].config.rank;  // PEFT: one adapter -> linear
  if (o.method == CombineMethod::kCat) return sum;
  if (method_is_svd(o.method)) return o.svd_rank > 0 ? o.svd_rank : max;
  for (const MergeAdapter& ad : adapters)
    if (ad.config.rank != adapters[0].config.rank)
      throw Error("--method " + name + ": every adapter must have the same rank (cat and the " +
                  "svd methods allow different ranks), but " + adapters[0].dir +
                  " has r=" + std::to_string(adapters[0].config.rank) + " and " + ad.dir +
                  " has r=" + std::to_string(ad.config.rank));
  return adapters[0].config.rank;
}

LoraFactors combine_module(const std::string& module, const std::vector<MergeAdapter>& adapters,
                           const CombineOptions& o, int64_t rank) {
  const CombineMethod method = adapters.size() == 1 ? CombineMethod::kLinear : o.method;
  struct Input {
    int index;
    double w, s;
    const LoraFactors* f;
  };
  std::vector<Input> in;
  for (size_t i = 0; i < adapters.size(); ++i) {
    auto it = adapters[i].modules.find(module);
    if (it != adapters[i].modules.end())
      in.push_back(
          {static_cast<int>(i), adapters[i].weight, adapters[i].config.scaling(), &it->second});
  }
  if (in.empty()) throw Error("combine: no adapter adapts " + module);
  const int64_t rows = in[0].f->b.dim(0), cols = in[0].f->a.dim(1);
  std::vector<double> a(static_cast<size_t>(rank * cols), 0.0);
  std::vector<double> b(static_cast<size_t>(rows * rank), 0.0);
  std::vector<int> index;
  for (const Input& x : in) index.push_back(x.index);

  if (method == CombineMethod::kCat) {
    // Present adapters packed first, zero rows/columns after (as PEFT fills its rank-Σr tensors).
    int64_t off = 0;
    for (const Input& x : in) {
      const int64_t r = x.f->a.dim(0);
      const std::vector<double> ai = to_f64(x.f->a), bi = to_f64(x.f->b);
      for (int64_t k = 0; k < r; ++k)
        for (int64_t j = 0; j < cols; ++j) a[(off + k) * cols + j] = x.w * x.s * ai[k * cols + j];
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t k = 0; k < r; ++k) b[i * rank + off + k] = bi[i * r + k];
      off += r;
    }
  } else if (method_is_svd(method)) {
    std::vector<std::vector<double>> deltas;
    std::vector<double> w;
    for (const Input& x : in) {
      const int64_t r = x.f->a.dim(0);
      const std::vector<double> ai = to_f64(x.f->a), bi = to_f64(x.f->b);
      std::vector<double> d(static_cast<size_t>(rows * cols), 0.0);  // s·B·A
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t k = 0; k < r; ++k) {
          const double bik = x.s * bi[i * r + k];
          for (int64_t j = 0; j < cols; ++j) d[i * cols + j] += bik * ai[k * cols + j];
        }
      deltas.push_back(std::move(d));
      w.push_back(x.w);
    }
    const std::vector<double> delta =
        combine_tasks(std::move(deltas), w, index, rule_of(method), o, module, "delta");
    truncated_svd(delta, rows, cols, rank, b, a);
  } else {
    // The factor methods: √|c|·sign(c) on A, √|c| on B, so one adapter gives c·B·A.
    std::vector<std::vector<double>> as, bs;
    std::vector<double> ca, cb;
    for (const Input& x : in) {
      const double c = x.w * x.s;
      ca.push_back(std::sqrt(std::abs(c)) * (c >= 0 ? 1.0 : -1.0));
      cb.push_back(std::sqrt(std::abs(c)));
      as.push_back(to_f64(x.f->a));
      bs.push_back(to_f64(x.f->b));
    }
    a = combine_tasks(std::move(as), ca, index, rule_of(method), o, module, "lora_A");
    b = combine_tasks(std::move(bs), cb, index, rule_of(method), o, module, "lora_B");
  }
  return {to_f32(a, {rank, cols}), to_f32(b, {rows, rank})};
}

std::vector<MergeTerm> combined_terms_for(const std::string& name,
                                          const std::vector<MergeAdapter>& adapters,
                                          const CombineOptions& o, int64_t rank, double sign) {
  std::vector<MergeTerm> terms = merge_terms_for(name, adapters, sign);
  if (terms.empty() || o.method == CombineMethod::kCat || adapters.size() == 1) return terms;
  const LoraFactors f = combine_module(name.substr(0, name.size() - std::string(".weight").size()),
                                       adapters, o, rank);
  return {{sign, f.a, f.b}};
}

CombinedAdapter combine_adapters(const std::vector<MergeAdapter>& adapters, const CombineOptions& o,
                                 int64_t num_layers) {
  for (const MergeAdapter& ad : adapters)
    if (ad.config.dora)
      throw Error(ad.dir + ": a DoRA adapter (use_dora) cannot be combined into a new adapter: " +
                  "its magnitude vector has no combination (PEFT's add_weighted_adapter drops it " +
                  "and re-initialises the magnitude); merge it into the base with hone merge");
  const int64_t rank = combined_rank(adapters, o);
  CombinedAdapter out;
  LoraConfig& c = out.config;
  c.rank = rank;
  c.alpha = static_cast<double>(rank);
  c.rslora = false;
  c.dropout = adapters[0].config.dropout;
  std::set<std::string> kinds;
  std::set<int> layers;
  bool every_layer = false;
  int max_layer = -1;
  std::map<std::string, std::pair<int64_t, int64_t>> kind_shape;  // kind -> (out, in)
  for (const MergeAdapter& ad : adapters) {
    for (const std::string& k : kinds_of(ad.config)) kinds.insert(k);
    every_layer = every_layer || ad.config.layers.empty();
    layers.insert(ad.config.layers.begin(), ad.config.layers.end());
    for (const auto& [module, f] : ad.modules) {
      max_layer = std::max(max_layer, layer_of_module(module));
      kind_shape[kind_of(module)] = {f.b.dim(0), f.a.dim(1)};
    }
  }
  // Targets in the canonical projection order.
  c.targets.clear();
  for (const std::string& k : lora_target_kinds())
    if (kinds.count(k)) c.targets.push_back(k);
  if (!every_layer) c.layers.assign(layers.begin(), layers.end());
  std::vector<int> layer_list = c.layers;
  if (every_layer) {
    const int64_t n = num_layers > 0 ? num_layers : max_layer + 1;
    for (int l = 0; l < n; ++l) layer_list.push_back(l);
  }
  for (int l : layer_list)
    for (const std::string& k : c.targets) {
      const std::string module = module_name(l, k);
      bool any = false;
      for (const MergeAdapter& ad : adapters) any = any || ad.modules.count(module);
      if (any) {
        out.modules[module] = combine_module(module, adapters, o, rank);
        continue;
      }
      auto it = kind_shape.find(k);
      if (it == kind_shape.end())
        throw Error("combine: the combined adapter targets " + module + ", but no adapter has a " +
                    k + " tensor to tell its shape");
      out.modules[module] = {Tensor::zeros(DType::F32, {rank, it->second.second}),
                             Tensor::zeros(DType::F32, {it->second.first, rank})};
    }
  c.validate();
  return out;
}

}  // namespace hone
