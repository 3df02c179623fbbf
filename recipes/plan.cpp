#include "recipes/plan.h"

#include <sys/mman.h>
#include <tbb/info.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "autograd/kernels/bf16_gemm.h"
#include "autograd/kernels/blas.h"
#include "autograd/kernels/compute_choice.h"
#include "autograd/ops/bf16_products.h"
#include "data/instruct_dataset.h"
#include "data/text_dataset.h"
#include "data/token_store.h"
#include "model/io/model_files.h"
#include "model/shapes.h"
#include "recipes/model_tokenizer.h"
#include "recipes/parallel/layout.h"
#include "recipes/plan_parallel.h"
#include "recipes/recipe.h"
#include "recipes/run_setup.h"

namespace hone {

namespace {

constexpr int64_t kF32 = 4;
// The weight-conversion tile (autograd/ops/weight_blocks.h): at most this many f32 elements.
constexpr int64_t kConvertTile = int64_t{1} << 22;

bool is_stored_weight(const std::string& name) {
  return name == "model.embed_tokens.weight" || name == "lm_head.weight" ||
         (name.size() > 12 && name.compare(name.size() - 12, 12, "_proj.weight") == 0);
}

// How Transformer stores frozen weight `name` of this shape (see projection_storage).
DType stored_dtype(const PlanSpec& s, const std::string& name, const Shape& shape) {
  DType d = s.weight_dtype;
  if (name != "model.embed_tokens.weight") d = projection_storage(d, s.bf16_products);
  if (is_quantized(d) && shape.back() % 32 != 0) d = DType::BF16;
  return d;
}

struct Proj {
  const char* kind;
  int64_t in, out;
};

std::vector<Proj> projections(const ModelConfig& m) {
  const int64_t C = m.hidden_size, Q = m.q_dim(), K = m.kv_dim(), F = m.intermediate_size;
  return {{"q_proj", C, Q},    {"k_proj", C, K},  {"v_proj", C, K},   {"o_proj", Q, C},
          {"gate_proj", C, F}, {"up_proj", C, F}, {"down_proj", F, C}};
}

bool adapted(const LoraConfig& l, const std::string& kind, int64_t layer) {
  const bool all = l.targets.size() == 1 && l.targets[0] == "all-linear";
  if (!all && std::find(l.targets.begin(), l.targets.end(), kind) == l.targets.end()) return false;
  return l.layers.empty() ||
         std::find(l.layers.begin(), l.layers.end(), static_cast<int>(layer)) != l.layers.end();
}

}  // namespace

std::string human_bytes(int64_t b) {
  char buf[48];
  const double d = static_cast<double>(b);
  if (b >= (int64_t{1} << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", d / (1 << 30));
  else if (b >= (1 << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", d / (1 << 20));
  else
    std::snprintf(buf, sizeof buf, "%.1f KiB", d / 1024);
  return buf;
}

int64_t parse_memory_size(const std::string& text, const std::string& what) {
  if (text == "none") return -1;
  size_t used = 0;
  double v = -1;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  if (!unit.empty() && unit.back() == 'B') unit.pop_back();  // "GiB", "GB" -> "Gi", "G"
  if (unit.size() == 2 && unit[1] == 'i') unit.pop_back();
  double mult = 0;
  if (unit.empty())
    mult = 1;
  else if (unit == "K" || unit == "k")
    mult = 1024.0;
  else if (unit == "M")
    mult = 1024.0 * 1024;
  else if (unit == "G")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "T")
    mult = 1024.0 * 1024 * 1024 * 1024;
  if (used == 0 || mult == 0 || !(v > 0))
    throw Error(what + ": expected a size such as 16G, 512M or a byte count, or none (got \"" +
                text + "\")");
  return static_cast<int64_t>(v * mult);
}

bool stage_holds_tensor(const PlanSpec& s, const std::string& name) {
  static const std::string layers = "model.layers.";
  if (name.rfind(layers, 0) == 0) {
    if (s.stage_layers < 0) return true;
    const int64_t l = std::stoll(name.substr(layers.size()));
    return l >= s.first_layer && l < s.first_layer + s.stage_layers;
  }
  if (name == "model.embed_tokens.weight")
    return s.holds_embedding || (s.holds_head && s.model.tie_word_embeddings);
  return s.holds_head;  // model.norm.weight, lm_head.weight
}

int64_t planned_weight_bytes(const ModelConfig& cfg, DType wd) {
  PlanSpec s;
  s.model = cfg;
  s.weight_dtype = wd;
  return planned_weight_bytes(s);
}

int64_t planned_weight_bytes(const PlanSpec& s) {
  int64_t n = 0;
  for (const auto& [name, shape] : expected_tensor_shapes(s.model)) {
    if (!stage_holds_tensor(s, name)) continue;
    const int64_t numel = shape_numel(shape);
    const DType d = is_stored_weight(name) ? stored_dtype(s, name, shape) : DType::F32;
    n += static_cast<int64_t>(dtype_nbytes(d, numel));
  }
  return n;
}

int64_t planned_converted_bytes(const PlanSpec& s, DType source) {
  int64_t n = 0;
  for (const auto& [name, shape] : expected_tensor_shapes(s.model))
    if (stage_holds_tensor(s, name) && is_stored_weight(name) &&
        stored_dtype(s, name, shape) != source)
      n += static_cast<int64_t>(dtype_nbytes(source, shape_numel(shape)));
  return n;
}

MemoryPlan plan_memory(const PlanSpec& s) {
  const ModelConfig& m = s.model;
  MemoryPlan p;
  const int64_t N = s.batch * s.seq;
  const int64_t C = m.hidden_size, Q = m.q_dim(), K = m.kv_dim(), F = m.intermediate_size;
  const int64_t V = m.vocab_size, L = m.num_layers, Hq = m.num_heads, Hkv = m.num_kv_heads;
  const int64_t r = s.lora.rank;
  const bool dropout = s.lora.dropout > 0.0;

  p.weights = planned_weight_bytes(s);
  p.load_extra = s.source_bytes;
  if (s.stage_layers >= 0) {
    p.load_extra = 0;
    for (const auto& [name, bytes] : s.source_tensors)
      if (stage_holds_tensor(s, name)) p.load_extra += bytes;
  }
  // The blocks this process runs: all, or its pipeline stage's.
  const int64_t first = s.stage_layers < 0 ? 0 : s.first_layer;
  const int64_t end = s.stage_layers < 0 ? L : s.first_layer + s.stage_layers;
  const int64_t n_layers = end - first;

  // Per token, the floats each block's ops keep for the backward (their outputs, which later
  // ops capture): 6 of width C (norm, o_proj, residual, norm, down_proj, residual; 4 when
  // adapters fuse o_proj and down_proj with their residual adds), 3 of Q (q,
  // roped q, attention), 3 of K (k, v, roped k), 3 of F (gate, up, SwiGLU), the attention
  // log-sum-exp per head and the norms' inverse RMS; per adapter x·Aᵀ (r), and with dropout the
  // dropped copy of its input.
  int64_t sum_blocks = 0, max_block = 0;
  for (int64_t l = first; l < end; ++l) {
    int64_t f = 6 * C + 3 * Q + 3 * K + 3 * F + Hq + 2;
    if (m.qk_norm) f += Q + K + Hq + Hkv;
    for (const Proj& pr : projections(m))
      if (adapted(s.lora, pr.kind, l)) {
        f += r;
        // An adapted o_proj / down_proj adds into its residual: no separate output.
        if (std::string(pr.kind) == "o_proj" || std::string(pr.kind) == "down_proj") f -= C;
        p.lora_params += r * (pr.in + pr.out);
        if (dropout) f += pr.in;
        // DoRA: the magnitude m (out) is trained, and its op keeps xa·Wᵀ + s·xa·Aᵀ·Bᵀ (out).
        if (s.lora.dora) {
          p.lora_params += pr.out;
          f += pr.out;
        }
      }
    sum_blocks += f;
    max_block = std::max(max_block, f);
  }
  p.adapters = 2 * p.lora_params * kF32;
  p.optimizer = s.optimizer_states * p.lora_params * kF32;

  // Gradients alive at once in a block's backward: the MLP's (residual, SwiGLU input and its two
  // inputs) or the attention's (q, k, v, their pre-RoPE forms, the norm input and residual).
  const int64_t grads_block = N * kF32 * std::max(C + 3 * F, 2 * Q + 4 * K + 2 * C);

  const int64_t logits_bytes = 2 * N * V * kF32;
  p.fused_head = logits_bytes > s.fused_loss_bytes;
  // Fused (autograd/ops/lm_head_loss.cpp): a (chunk, tile) block of logits, the gathered rows and
  // their gradient; else the logits, their gradient and the head's input gradient.
  const int64_t tile = std::min(V, kConvertTile / std::max<int64_t>(C, 1));
  const int64_t chunk = std::min(N, kConvertTile / std::max<int64_t>(tile, 1));
  p.lm_head = p.fused_head ? (chunk * tile + 2 * N * C) * kF32 : logits_bytes + N * C * kF32;
  if (!s.holds_head) p.lm_head = 0;

  // The embedding output (or, on a later pipeline stage, the hidden state received) and, where
  // the head is, the final norm; per micro-batch in flight.
  const int64_t outside = N * kF32 * (C + (s.holds_head ? C + 1 : 0));
  if (!s.checkpointing) {
    p.activations = s.in_flight * (outside + N * kF32 * sum_blocks);
    p.backward = grads_block;
  } else {
    // Each block keeps its input; its own activations exist again only while it is recomputed.
    p.activations = s.in_flight * (outside + N * kF32 * C * n_layers);
    p.backward = N * kF32 * max_block + grads_block;
  }
  p.dp_buffers = dp_buffer_bytes(p.lora_params, s.data_parallel, s.local_micro_batches);

  // Conversion tiles of a 16-bit or quantized base: one per thread that converts.
  if (s.weight_dtype != DType::F32 && s.weight_dtype != DType::F64) {
    int64_t largest = 0;
    for (const Proj& pr : projections(m)) largest = std::max(largest, pr.in * pr.out);
    if (s.holds_embedding || s.holds_head) largest = std::max(largest, V * C);
    p.workspace = std::min(largest, kConvertTile) * kF32 * std::max(1, s.threads);
  }
  p.runtime = s.runtime_bytes;
  p.data = s.data_bytes;
  p.data_load = s.data_load_bytes;
  p.tokenizer = s.tokenizer_bytes;
  // Loading: the base's source is released before the data is read (load_base, then load_data),
  // so the converted source and the JSONL records being windowed are never alive together.
  p.load_peak = p.weights + p.runtime + p.tokenizer + std::max(p.load_extra, p.data + p.data_load);
  p.train_peak = p.weights + p.adapters + p.optimizer + p.activations + p.lm_head + p.backward +
                 p.workspace + p.runtime + p.data + p.tokenizer + p.dp_buffers;
  p.peak = std::max(p.load_peak, p.train_peak);

  // FLOPs per token (bench/compare_table.py writes the same formula out).
  double n_blocks = 0;
  for (const Proj& pr : projections(m)) n_blocks += static_cast<double>(pr.in * pr.out);
  n_blocks *= static_cast<double>(n_layers);
  const double head = s.holds_head ? static_cast<double>(V * C) : 0.0;
  const double lora = 6.0 * static_cast<double>(p.lora_params);
  const double attn = 6.0 * static_cast<double>(n_layers * s.seq * Q);
  const double per_token = 4 * (n_blocks + head) + lora + attn;
  double extra = 0;
  if (s.checkpointing) extra += 2 * n_blocks + lora / 3 + attn / 3;  // the blocks' forward again
  if (p.fused_head) extra += 2 * head;                               // the logits again
  p.model_flops = per_token * static_cast<double>(N);
  p.executed_flops = (per_token + extra) * static_cast<double>(N);
  return p;
}

int64_t current_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return 0;
}

int64_t available_memory_bytes() {
  int64_t avail = 0;
  {
    std::ifstream f("/proc/meminfo");
    std::string key;
    int64_t kib = 0;
    std::string unit;
    while (f >> key >> kib) {
      std::getline(f, unit);
      if (key == "MemAvailable:") avail = kib * 1024;
    }
  }
  // cgroup v2: the limit minus what the group uses already.
  std::ifstream mx("/sys/fs/cgroup/memory.max"), cur("/sys/fs/cgroup/memory.current");
  std::string lim;
  int64_t used = 0;
  if (mx >> lim && lim != "max" && cur >> used) {
    const int64_t room = std::stoll(lim) - used;
    if (avail == 0 || room < avail) avail = std::max<int64_t>(room, 0);
  }
  return avail;
}

PlanSpec plan_spec_for(const RecipeConfig& cfg) {
  ModelFiles files = load_model_files(cfg.model.path);  // headers and mappings; no weight is read
  PlanSpec s = plan_spec_for_shape(cfg, files.config);
  // Tensors already in the storage dtype are used in place; the others are converted, with the
  // source held (and, when memory-mapped, wholly read) meanwhile.
  for (const auto& [name, t] : files.tensors)
    if (is_stored_weight(name) && t.dtype() != stored_dtype(s, name, t.shape())) {
      s.source_bytes += static_cast<int64_t>(t.nbytes());
      s.source_tensors.emplace_back(name, static_cast<int64_t>(t.nbytes()));
    }
  return s;
}

PlanSpec plan_spec_for_shape(const RecipeConfig& cfg, const ModelConfig& model) {
  PlanSpec s;
  s.model = model;
  s.weight_dtype = weight_dtype_from(cfg.model.dtype);
  s.lora = cfg.lora;
  s.batch = cfg.training.batch_size;
  s.seq = cfg.data.seq_len;
  s.checkpointing = cfg.training.activation_checkpointing;
  s.fused_loss_bytes = cfg.training.fused_loss_bytes();
  s.optimizer_states = cfg.optimizer.name == "adamw" ? 2 : (cfg.optimizer.momentum != 0 ? 1 : 0);
  s.threads = cfg.training.threads > 0 ? cfg.training.threads : tbb::info::default_concurrency();
  // The driver's HDF5 checkpoint writer and evaluation add nothing measurable to what the bench
  // measures (quickstart, 2 steps: 90.4 MB peak without either, 90.1 MB with both), now that
  // evaluation's partial last batch does not stay in the block cache; the data and the tokenizer
  // are terms of their own.
  s.runtime_bytes = planned_runtime_bytes(current_rss_bytes());
  s.data_bytes = planned_data_bytes(cfg, s.model.vocab_size);
  if (cfg.data.format != "text") {
    const InstructDataPlan d = planned_instruct_bytes(cfg);
    s.data_bytes = d.held;
    s.data_load_bytes = d.loading;
  }
  s.tokenizer_bytes = planned_tokenizer_bytes(cfg);
  s.bf16_products = kernels::choose_compute(cfg.training.compute_dtype, kernels::cpu_kind(),
                                            cfg.source + ": training.compute_dtype")
                        .bf16;
  s.runtime_bytes += planned_bf16_runtime_bytes(s, s.bf16_products);
  return s;
}

namespace {

// n elements of T in pages of their own, returned to the system when freed (a std::vector's
// might stay in the heap and count as the products' memory).
template <class T>
class PageBuffer {
 public:
  explicit PageBuffer(int64_t n)
      : bytes_(static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(T)),
        p_(mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) {
    if (p_ == MAP_FAILED) throw Error("plan: cannot map " + std::to_string(bytes_) + " bytes");
  }
  ~PageBuffer() { munmap(p_, bytes_); }
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;
  T* data() { return static_cast<T*>(p_); }

 private:
  size_t bytes_;
  void* p_;
};

}  // namespace

int64_t planned_bf16_runtime_bytes(const PlanSpec& s, bool bf16) {
  if (!bf16 || !kernels::bf16_gemm_available()) return 0;
  // The step's own bf16 products (forward x·Wᵀ, input gradient dy·W, split and tiled as in
  // training) on zero-filled operands of the spec's sizes and weight storage, each distinct
  // projection and the head once: oneDNN's generated kernels, per-thread state and buffers are
  // what stays. The sizes are capped (tokens 512, W 2048 × 4096) so that the probe of a large
  // model stays well under a second; the kernels and buffers it leaves do not grow past them.
  const int64_t N = std::clamp<int64_t>(s.batch * s.seq, 1, 512);
  std::vector<std::pair<int64_t, int64_t>> shapes;  // (in, out)
  for (const Proj& pr : projections(s.model)) shapes.emplace_back(pr.in, pr.out);
  shapes.emplace_back(s.model.hidden_size, s.model.vocab_size);
  std::sort(shapes.begin(), shapes.end());
  shapes.erase(std::unique(shapes.begin(), shapes.end()), shapes.end());
  const DType wd_base =
      projection_storage(s.weight_dtype == DType::F64 ? DType::F32 : s.weight_dtype, true);
  const int64_t before = current_rss_bytes();
  for (auto [in_full, out_full] : shapes) {
    const int64_t out = std::min<int64_t>(out_full, 2048), in = std::min<int64_t>(in_full, 4096);
    // Rows that do not split into whole blocks stay f32 in a quantized base, as the model keeps
    // them.
    const DType wd = is_quantized(wd_base) && in % 32 != 0 ? DType::F32 : wd_base;
    auto w = std::make_shared<PageBuffer<char>>(static_cast<int64_t>(dtype_nbytes(wd, out * in)));
    const Tensor W = Tensor::external(wd, {out, in}, w->data(), w);
    PageBuffer<float> x(N * in), y(N * out);
    ops_detail::bf16_xwt(W, out, in, x.data(), N, 0.0f, y.data());
    ops_detail::bf16_dyw(W, out, in, y.data(), N, 0.0f, x.data());
    ops_detail::bf16_dyw(W, out, in, y.data(), N, 1.0f, x.data());
  }
  return std::max<int64_t>(0, current_rss_bytes() - before);
}

int64_t planned_tokenizer_bytes(const RecipeConfig& cfg) {
  // Planning a shape whose files are not at hand: no tokenizer to measure.
  if (model_tokenizer_source(cfg.model.path, cfg.model.tokenizer).empty()) return 0;
  // A tokenizer's tables are maps of strings and ids whose size depends on the library's
  // containers more than on the file (a tokenizer.json takes about 7 times its bytes, a llama2.c
  // tok.bin a few times its): measured, not modelled. What the parse freed stays in the heap
  // for later small allocations, but the peak the run reaches includes it, as this figure does.
  const int64_t before = current_rss_bytes();
  try {
    const std::unique_ptr<Tokenizer> t = tokenizer_for_model(cfg.model.path, cfg.model.tokenizer);
    return std::max<int64_t>(0, current_rss_bytes() - before);
  } catch (const Error&) {
    return 0;  // the run itself reports a tokenizer it cannot load
  }
}

namespace {

// Non-blank lines of a JSONL file (the records read_instruct_file reads; a bad line is counted,
// as on_bad_line: error would refuse the file anyway). -1 when the file cannot be read.
int64_t count_records(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return -1;
  int64_t records = 0;
  bool content = false;
  char buf[1 << 16];
  while (f.read(buf, sizeof buf) || f.gcount() > 0) {
    for (std::streamsize i = 0; i < f.gcount(); ++i) {
      const char c = buf[i];
      if (c == '\n') {
        records += content;
        content = false;
      } else if (c != ' ' && c != '\t' && c != '\r') {
        content = true;
      }
    }
  }
  return records + content;
}

}  // namespace

InstructDataPlan planned_instruct_bytes(const RecipeConfig& cfg) {
  InstructDataPlan d;
  if (cfg.data.format == "text") return d;
  for (const std::string& f : {cfg.data.train, cfg.data.val})
    if (!f.empty()) d.records += std::max<int64_t>(0, count_records(f));
  const int64_t T = cfg.data.seq_len;
  // A window (data/packing.h Example): T ids and T targets, int32, and with packing T segment
  // starts; its three vectors' headers and each one's malloc chunk header.
  const int64_t per_window = T * 4 * (cfg.data.packing ? 3 : 2) + sizeof(Example) + 3 * 16;
  d.held = d.records * per_window;
  // A tokenized record (data/instruct_dataset.h TokenizedExample): an int32 id and a uint8 target
  // flag per token, at most T + 1 tokens once truncated, its "file:line" source and the headers.
  const int64_t per_record = (T + 1) * 5 + static_cast<int64_t>(sizeof(TokenizedExample)) +
                             static_cast<int64_t>(cfg.data.train.size()) + 16 + 3 * 16;
  d.loading = d.records * per_record;
  return d;
}

int64_t planned_data_bytes(const RecipeConfig& cfg, int32_t vocab_size) {
  if (cfg.data.format != "text") return 0;
  // The token cache is keyed by the tokenizer's files; planning a shape without them, the bound.
  std::error_code exists_ec;
  const bool tokenizer_at_hand =
      !cfg.model.tokenizer.empty() || std::filesystem::exists(cfg.model.path, exists_ec);
  TextDataOptions o;
  if (tokenizer_at_hand) {
    o = text_data_options(cfg);
  } else {
    o.train = cfg.data.train;
    o.val = cfg.data.val;
  }
  const TextTokenOptions t = text_token_options(o);
  int64_t total = 0;
  for (const std::string& spec : {o.train, o.val}) {
    if (spec.empty()) continue;
    for (const std::string& f : corpus_files(spec)) {
      int64_t store = tokenizer_at_hand ? cached_store_bytes(f, t) : -1;
      if (store < 0) {
        std::error_code ec;
        const auto bytes = static_cast<int64_t>(std::filesystem::file_size(f, ec));
        const int64_t docs =
            o.corpus.doc_separator.empty()
                ? 1
                : bytes / static_cast<int64_t>(o.corpus.doc_separator.size() + 1) + 1;
        store = token_store_bytes((ec ? 0 : bytes + bytes / 50) + 3 * docs, vocab_size);
      }
      total += store;
    }
  }
  return total;
}

double measure_gemm_gflops(int64_t tokens, int64_t hidden, int64_t inter, bool bf16) {
  tokens = std::clamp<int64_t>(tokens, 64, 1024);
  hidden = std::clamp<int64_t>(hidden, 64, 4096);
  inter = std::clamp<int64_t>(inter, 64, 16384);
  std::vector<float> a(static_cast<size_t>(tokens * hidden), 0.5f);
  std::vector<float> b(static_cast<size_t>(inter * hidden), 0.25f);
  std::vector<float> c(static_cast<size_t>(tokens * inter));
  // bf16 products: the activations' rounding is part of the product, as in training.
  std::vector<uint16_t> ah(bf16 ? a.size() : 0), bh(bf16 ? b.size() : 0, 0x3e80);
  auto run = [&] {
    if (bf16) {
      kernels::round_to_bf16(a.data(), ah.data(), a.size());
      kernels::gemm_bf16(true, tokens, inter, hidden, ah.data(), hidden, bh.data(), hidden, 0.0f,
                         c.data(), inter);
      return;
    }
    kernels::gemm<float>(false, true, tokens, inter, hidden, 1.0f, a.data(), hidden, b.data(),
                         hidden, 0.0f, c.data(), inter);
  };
  run();  // warm: buffers, threads
  const auto t0 = std::chrono::steady_clock::now();
  int reps = 0;
  double sec = 0;
  do {
    run();
    ++reps;
    sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (sec < 0.2);
  return 2.0 * static_cast<double>(tokens * hidden * inter) * reps / sec / 1e9;
}

std::string plan_report(const PlanSpec& s, const MemoryPlan& p, double gflops, int64_t available) {
  std::ostringstream o;
  auto row = [&](const char* what, int64_t b, const std::string& note) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "  %-22s %12s", what, human_bytes(b).c_str());
    o << buf << (note.empty() ? "" : "  " + note) << "\n";
  };
  o << "memory plan: " << s.batch << " x " << s.seq << " tokens, base "
    << dtype_name(s.weight_dtype) << (s.lora.dora ? ", DoRA r=" : ", LoRA r=") << s.lora.rank
    << " (" << p.lora_params << " parameters), activation checkpointing "
    << (s.checkpointing ? "on" : "off") << ", " << s.threads << " threads\n";
  row("weights", p.weights, "frozen base as stored");
  row("adapters", p.adapters, "LoRA values + gradients");
  row("optimizer state", p.optimizer, std::to_string(s.optimizer_states) + " per parameter");
  row("activations", p.activations,
      s.checkpointing ? "each block's input (blocks recomputed in backward)"
                      : "saved for backward");
  row("backward", p.backward, "gradients alive at once in a block's backward");
  row("lm head", p.lm_head, p.fused_head ? "fused with the loss, tiled" : "logits + grad");
  row("workspace", p.workspace, "weight conversion tiles");
  row("runtime", p.runtime, "libraries, BLAS buffers");
  row("data", p.data,
      p.data_load > 0 ? "windows of the JSONL records, at most one a record"
                      : "token ids of the corpus, mapped");
  row("tokenizer", p.tokenizer, "its tables, measured loading it");
  row("gradient fold", p.dp_buffers, "micro-batch gradients summed in a fixed order");
  row("peak (training)", p.train_peak, "");
  if (p.load_extra > 0)
    row("peak (loading)", p.load_peak, "source held while converting");
  else if (p.data_load > 0)
    row("peak (loading)", p.load_peak, "tokenized records held while packing");
  row("predicted peak", p.peak, "");
  if (available > 0) row("available", available, p.peak <= available ? "fits" : "DOES NOT FIT");
  char buf[200];
  const double tokens = static_cast<double>(s.batch * s.seq);
  const double sec = gflops > 0 ? p.executed_flops / (gflops * 1e9) : 0;
  std::snprintf(buf, sizeof buf,
                "step: %.1f GFLOP (model %.1f); at the %.0f GFLOP/s this machine's gemm reaches "
                "now, >= %.2f s/step (%.0f tokens/s)\n",
                p.executed_flops / 1e9, p.model_flops / 1e9, gflops, sec,
                sec > 0 ? tokens / sec : 0.0);
  o << buf;
  return o.str();
}

void check_plan_fits(const RecipeConfig& cfg, const PlanSpec& spec, int64_t available) {
  const MemoryPlan p = plan_memory(spec);
  if (available <= 0 || p.peak <= available) return;
  std::ostringstream o;
  o << cfg.source << ": predicted peak memory " << human_bytes(p.peak) << " exceeds the "
    << human_bytes(available) << " available (see `hone plan " << cfg.source << "`). Options:";
  auto option = [&](const std::string& what, PlanSpec alt) {
    const int64_t peak = plan_memory(alt).peak;
    o << "\n  " << what << ": " << human_bytes(peak) << (peak <= available ? " (fits)" : "");
  };
  if (!spec.checkpointing) {
    PlanSpec a = spec;
    a.checkpointing = true;
    option("training.activation_checkpointing=true", a);
  }
  if (!p.fused_head) {
    PlanSpec a = spec;
    a.fused_loss_bytes = 0;
    option("training.fused_lm_head=true", a);
  }
  for (DType d : {DType::BF16, DType::Q8_0, DType::Q4_0})
    if (dtype_nbytes(d, 64) < dtype_nbytes(spec.weight_dtype, 64)) {
      PlanSpec a = spec;
      a.weight_dtype = d;
      option(std::string("model.dtype=") + (d == DType::BF16   ? "bf16"
                                            : d == DType::Q8_0 ? "q8_0"
                                                               : "q4_0"),
             a);
    }
  if (spec.seq > 1) {
    PlanSpec a = spec;
    a.seq = spec.seq / 2;
    option("data.seq_len=" + std::to_string(a.seq), a);
  }
  if (spec.batch > 1) {
    PlanSpec a = spec;
    a.batch = spec.batch / 2;
    option("training.batch_size=" + std::to_string(a.batch) + " (with grad_accum x2)", a);
  }
  o << "\n  (--memory-limit BYTES sets what counts as available)";
  throw Error(o.str());
}

std::string run_plan(const PlanOptions& o) {
  RecipeConfig cfg = load_recipe(o.recipe, o.overrides);
  PlanSpec spec;
  if (o.shape.empty()) {
    check_recipe_paths(cfg);
    spec = plan_spec_for(cfg);
  } else {
    // The model's files need not exist; the corpus must (its size is a term).
    RecipeConfig checked = cfg;
    checked.model.path.clear();
    checked.model.tokenizer.clear();
    check_recipe_paths(checked);
    spec = plan_spec_for_shape(cfg, model_shape(o.shape));
  }
  const int64_t stages = o.stages > 0 ? o.stages : cfg.training.pipeline_stages;
  const int64_t ranks = o.ranks > 0 ? o.ranks : stages;
  RankLayout layout;
  try {
    layout = make_rank_layout(ranks, stages, cfg.training.grad_accum, spec.model.num_layers);
  } catch (const Error& e) {
    throw Error(cfg.source + ": " + e.what());
  }
  const double link = parse_link_speed(o.link, "--link");
  double gflops = o.gflops;
  if (gflops <= 0) {
    if (spec.threads > 0) kernels::set_blas_threads(spec.threads);
    // The arithmetic training.compute_dtype picks on this machine sets the rate.
    const bool bf16 = kernels::choose_compute(cfg.training.compute_dtype, kernels::cpu_kind(),
                                              cfg.source + ": training.compute_dtype")
                          .bf16;
    gflops = measure_gemm_gflops(spec.batch * spec.seq, spec.model.hidden_size,
                                 spec.model.intermediate_size, bf16);
  }
  const int64_t available =
      o.memory_limit > 0 ? o.memory_limit : (o.memory_limit == 0 ? available_memory_bytes() : 0);
  if (layout.ranks == 1) return plan_report(spec, plan_memory(spec), gflops, available);
  const ParallelPlan pp = plan_parallel(spec, layout, cfg.training.grad_accum, gflops, link);
  return parallel_plan_report(spec, pp, gflops, link, available);
}

}  // namespace hone
