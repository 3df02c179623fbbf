#include "model/io/llama2c.h"

#include <bit>
#include <cstdlib>
#include <cstring>

#include "model/io/mapped_file.h"

namespace hone {

static_assert(std::endian::native == std::endian::little, "llama2.c I/O assumes little-endian");

namespace {

// Copies a [heads*head_dim, cols] block of llama2.c q/k rows into HF rotate-half order: within a
// head, source row 2i+t (t = 0, 1) goes to row t*head_dim/2 + i.
void permute_rope_rows(const float* src, float* dst, int64_t heads, int64_t head_dim,
                       int64_t cols) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t t = 0; t < 2; ++t) {
        const float* s = src + (h * head_dim + 2 * i + t) * cols;
        float* d = dst + (h * head_dim + t * half + i) * cols;
        std::memcpy(d, s, static_cast<size_t>(cols) * sizeof(float));
      }
}

}  // namespace

ModelFiles read_llama2c(const std::string& path, const LayerRange& range) {
  auto file = map_file(path);
  auto fail = [&](const std::string& what) -> void { throw Error(path + ": " + what); };
  if (file->size < 28)
    fail("file is " + std::to_string(file->size) +
         " bytes, too short for a llama2.c header (28 bytes)");
  int32_t hdr[7];
  std::memcpy(hdr, file->data, sizeof hdr);
  const char* names[7] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                          "n_kv_heads", "vocab_size", "seq_len"};
  // Generous caps keep every size product below 2^62 and catch files that are not llama2.c.
  const int64_t caps[7] = {1 << 20, 1 << 22, 1 << 12, 1 << 16, 1 << 16, 1 << 24, 1 << 24};
  for (int k = 0; k < 7; ++k) {
    int64_t v = k == 5 ? std::abs(static_cast<int64_t>(hdr[k])) : hdr[k];
    if (v <= 0 || v > caps[k])
      fail("header " + std::string(names[k]) + " = " + std::to_string(hdr[k]) +
           " is out of range (not a llama2.c checkpoint?)");
  }
  const int64_t dim = hdr[0], hidden = hdr[1], L = hdr[2], heads = hdr[3], kv_heads = hdr[4];
  const bool shared = hdr[5] > 0;
  const int64_t vocab = std::abs(static_cast<int64_t>(hdr[5])), seq_len = hdr[6];
  if (dim % heads != 0)
    fail("header n_heads " + std::to_string(heads) + " does not divide dim " + std::to_string(dim));
  if (heads % kv_heads != 0)
    fail("header n_kv_heads " + std::to_string(kv_heads) + " does not divide n_heads " +
         std::to_string(heads));
  const int64_t head_dim = dim / heads, kv_dim = kv_heads * head_dim;
  if (head_dim % 2 != 0) fail("head size " + std::to_string(head_dim) + " must be even for RoPE");

  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.hidden_size = dim;
  c.intermediate_size = hidden;
  c.num_layers = L;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.vocab_size = vocab;
  c.max_position_embeddings = seq_len;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = shared;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.torch_dtype = "float32";
  c.validate(path);

  const int64_t floats = vocab * dim + L * dim + L * dim * dim + 2 * L * kv_dim * dim +
                         L * dim * dim + L * dim + 3 * L * hidden * dim + dim +
                         seq_len * head_dim  // freq_cis_real + freq_cis_imag, each seq_len*hd/2
                         + (shared ? 0 : vocab * dim);
  const uint64_t expected = 28 + static_cast<uint64_t>(floats) * 4;
  if (file->size != expected)
    fail("file is " + std::to_string(file->size) + " bytes but the header (dim " +
         std::to_string(dim) + ", " + std::to_string(L) + " layers, vocab " +
         std::to_string(vocab) + (shared ? "" : " unshared") + ") implies " +
         std::to_string(expected) + " bytes" +
         (file->size < expected ? " (truncated file)" : " (trailing bytes)"));

  ModelFiles out;
  out.config = c;
  const TensorFilter keep = range_filter(range.resolved(L), c);
  auto held = [&](const std::string& name) { return !keep || keep(name); };
  out.format = "llama2c";
  out.source = path;
  const uint8_t* p = file->data + 28;
  // Takes the next `n` floats of the file as one [rows, cols] tensor per layer (or once).
  auto take = [&](int64_t n) {
    const float* f = reinterpret_cast<const float*>(p);
    p += n * 4;
    return f;
  };
  auto copy = [](const float* src, Shape shape) {
    Tensor t = Tensor::empty(DType::F32, std::move(shape));
    std::memcpy(t.raw(), src, t.nbytes());
    return t;
  };
  auto layer = [](int64_t i, const std::string& rest) {
    return "model.layers." + std::to_string(i) + "." + rest;
  };
  // The file's float arrays start at byte 28, so they are 4-byte aligned in the map; memcpy
  // avoids relying on it anyway.
  // Each array is copied (or permuted) only when the stage holds it; `take` skips it otherwise.
  auto plain = [&](const std::string& name, Shape shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    const float* src = take(n);
    if (held(name)) out.tensors[name] = copy(src, std::move(shape));
  };
  auto rope_rows = [&](const std::string& name, int64_t h, int64_t rows) {
    const float* src = take(rows * dim);
    if (!held(name)) return;
    Tensor t = Tensor::empty(DType::F32, {rows, dim});
    permute_rope_rows(src, t.data<float>(), h, head_dim, dim);
    out.tensors[name] = t;
  };
  plain("model.embed_tokens.weight", {vocab, dim});
  for (int64_t i = 0; i < L; ++i) plain(layer(i, "input_layernorm.weight"), {dim});
  for (int64_t i = 0; i < L; ++i) rope_rows(layer(i, "self_attn.q_proj.weight"), heads, dim);
  for (int64_t i = 0; i < L; ++i) rope_rows(layer(i, "self_attn.k_proj.weight"), kv_heads, kv_dim);
  for (int64_t i = 0; i < L; ++i) plain(layer(i, "self_attn.v_proj.weight"), {kv_dim, dim});
  for (int64_t i = 0; i < L; ++i) plain(layer(i, "self_attn.o_proj.weight"), {dim, dim});
  for (int64_t i = 0; i < L; ++i) plain(layer(i, "post_attention_layernorm.weight"), {dim});
  for (int64_t i = 0; i < L; ++i) plain(layer(i, "mlp.gate_proj.weight"), {hidden, dim});
  for (int64_t i = 0; i < L; ++i) plain(layer(i, "mlp.down_proj.weight"), {dim, hidden});
  for (int64_t i = 0; i < L; ++i) plain(layer(i, "mlp.up_proj.weight"), {hidden, dim});
  plain("model.norm.weight", {dim});
  take(seq_len * head_dim);  // legacy freq_cis_real / freq_cis_imag, unused
  if (!shared) plain("lm_head.weight", {vocab, dim});
  out.files = {path};
  return out;
}

}  // namespace hone
