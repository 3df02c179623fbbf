// Forward+backward throughput of a LoRA training step (no optimizer yet), in tokens/s, for the
// real stories260K checkpoint and for random-weight models of published shapes.
//
//   bench_train_step [--model stories260K|smollm2-135m] [--seq 512] [--batch 1] [--rank 16]
//                    [--steps 5] [--warmup 1]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "autograd/kernels/blas.h"
#include "lora/lora.h"
#include "model/io/model_files.h"
#include "model/random_weights.h"

using namespace hone;

namespace {

ModelConfig smollm2_135m() {
  ModelConfig c;
  c.hidden_size = 576;
  c.intermediate_size = 1536;
  c.num_layers = 30;
  c.num_heads = 9;
  c.num_kv_heads = 3;
  c.head_dim = 64;
  c.vocab_size = 49152;
  c.max_position_embeddings = 2048;
  c.rope_theta = 100000;
  c.tie_word_embeddings = true;
  return c;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  kernels::blas_ensure_fast_kernel(argc, argv);
  std::string which = "stories260K", model_path = "data/samples/stories260K/stories260K.bin";
  int64_t seq = 512, batch = 1, rank = 16;
  int steps = 5, warmup = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--model")
      which = v;
    else if (k == "--model-path")
      model_path = v;
    else if (k == "--seq")
      seq = std::stoll(v);
    else if (k == "--batch")
      batch = std::stoll(v);
    else if (k == "--rank")
      rank = std::stoll(v);
    else if (k == "--steps")
      steps = std::stoi(v);
    else if (k == "--warmup")
      warmup = std::stoi(v);
    else {
      std::fprintf(stderr, "bench_train_step: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  try {
    ModelConfig cfg;
    std::map<std::string, Tensor> weights;
    if (which == "stories260K") {
      ModelFiles f = load_model_files(model_path);
      cfg = f.config;
      weights = std::move(f.tensors);
    } else if (which == "smollm2-135m") {
      cfg = smollm2_135m();
      weights = random_weights(cfg, 1234);
    } else {
      std::fprintf(stderr, "bench_train_step: unknown model %s\n", which.c_str());
      return 2;
    }
    Transformer model(cfg, weights);
    LoraConfig lc;
    lc.rank = rank;
    lc.alpha = 2.0 * static_cast<double>(rank);
    lc.targets = {"all-linear"};
    LoraAdapters adapters(model, lc);

    std::vector<int32_t> ids(batch * seq), targets(batch * seq);
    Rng rng(7);
    for (auto& t : ids) t = static_cast<int32_t>(rng.next_u64() % cfg.vocab_size);
    for (auto& t : targets) t = static_cast<int32_t>(rng.next_u64() % cfg.vocab_size);

    double total = 0, loss = 0;
    for (int s = 0; s < warmup + steps; ++s) {
      auto t0 = std::chrono::steady_clock::now();
      Tape tape;
      adapters.zero_grad();
      Var l = model.loss(&tape, ids, targets, batch, seq);
      tape.backward(l);
      double dt = seconds_since(t0);
      loss = l.value().item(0);
      if (s >= warmup) total += dt;
    }
    const double tps = static_cast<double>(batch * seq * steps) / total;
    std::printf(
        "{\"model\": \"%s\", \"params\": %lld, \"lora_params\": %lld, \"batch\": %lld, \"seq\": "
        "%lld, \"rank\": %lld, \"steps\": %d, \"sec_per_step\": %.4f, \"tokens_per_s\": %.1f, "
        "\"loss\": %.4f, \"blas\": \"%s\"}\n",
        which.c_str(), static_cast<long long>(model.num_parameters()),
        static_cast<long long>(adapters.num_parameters()), static_cast<long long>(batch),
        static_cast<long long>(seq), static_cast<long long>(rank), steps, total / steps, tps, loss,
        kernels::blas_info().c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_train_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
