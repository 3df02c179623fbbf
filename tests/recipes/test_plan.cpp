// The memory planner: its weight term is the model's own byte count, its terms move the way the
// recipe's knobs say, `hone train` refuses a run predicted not to fit (one message with computed
// alternatives, exit 1, nothing written), and its prediction for a real training run through the
// binary is within 15% of the peak RSS /usr/bin/time measures.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "autograd/kernels/bf16_gemm.h"
#include "data/text_dataset.h"
#include "hone_process.h"
#include "model/random_weights.h"
#include "model/shapes.h"
#include "model/transformer.h"
#include "recipes/plan.h"
#include "recipes/recipe.h"
#include "recipes/run_setup.h"
#include "tiny_model.h"
#include "tmpdir.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

const std::string kRecipe = std::string(HONE_SOURCE_DIR) + "/recipes/configs/quickstart.yaml";

ModelConfig small(bool tied, bool bias, bool qk_norm, int64_t inter) {
  ModelConfig c =
      test::tiny_model({.hidden = 64, .intermediate = inter, .vocab = 96, .max_positions = 2048});
  c.tie_word_embeddings = tied;
  c.attention_bias = bias;
  c.qk_norm = qk_norm;
  return c;
}

TEST(Plan, WeightBytesAreTheModelsOwn) {
  for (bool tied : {false, true})
    for (bool qwen : {false, true})
      for (int64_t inter : {96, 172})  // 172: down_proj rows are not whole 32-blocks
        for (DType d : {DType::F32, DType::BF16, DType::F16, DType::Q8_0, DType::Q4_0}) {
          const ModelConfig c = small(tied, qwen, qwen, inter);
          Transformer m(c, random_weights(c, 1), d);
          EXPECT_EQ(planned_weight_bytes(c, d), static_cast<int64_t>(m.nbytes()))
              << dtype_name(d) << " tied " << tied << " inter " << inter;
        }
}

// Under bf16 products an f32 base's projections (and an untied head) are held as bf16.
TEST(Plan, WeightBytesUnderBf16ProductsAreTheModelsOwn) {
  if (!kernels::bf16_gemm_available()) GTEST_SKIP() << kernels::bf16_gemm_info();
  for (bool tied : {false, true})
    for (DType d : {DType::F32, DType::Q8_0}) {
      const ModelConfig c = small(tied, false, false, 172);
      kernels::ScopedBf16Products bf16(true);
      Transformer m(c, random_weights(c, 1), d);
      PlanSpec s;
      s.model = c;
      s.weight_dtype = d;
      s.bf16_products = true;
      EXPECT_EQ(planned_weight_bytes(s), static_cast<int64_t>(m.nbytes()))
          << dtype_name(d) << " tied " << tied;
      // Every tensor converted from f32 went from 4 bytes an element to 2 (bf16 projections) or
      // less (q8_0): for an f32 base, what it converts is twice what it saves.
      if (d == DType::F32) {
        EXPECT_EQ(planned_converted_bytes(s, DType::F32),
                  2 * (planned_weight_bytes(c, DType::F32) - static_cast<int64_t>(m.nbytes())))
            << dtype_name(d) << " tied " << tied;
      }
    }
}

TEST(Plan, TermsFollowTheKnobs) {
  PlanSpec s;
  s.model = model_shape("smollm2-135m");
  s.lora.rank = 16;
  s.lora.targets = {"all-linear"};
  const MemoryPlan base = plan_memory(s);
  EXPECT_EQ(base.lora_params, 4884480);  // as LoraAdapters counts it (bench_train_step prints it)
  EXPECT_EQ(base.adapters, 2 * 4 * base.lora_params);
  EXPECT_EQ(base.optimizer, 2 * 4 * base.lora_params);
  EXPECT_FALSE(base.fused_head);  // 2·512·49152·4 bytes = 192 MiB: under the 1 GiB switch

  PlanSpec ck = s;
  ck.checkpointing = true;
  const MemoryPlan c = plan_memory(ck);
  EXPECT_LT(c.activations * 10, base.activations);   // one (N, C) per block instead of ~18
  EXPECT_GT(c.executed_flops, base.executed_flops);  // the recompute
  EXPECT_EQ(c.model_flops, base.model_flops);

  PlanSpec q = s;
  q.weight_dtype = DType::Q4_0;
  EXPECT_LT(plan_memory(q).weights * 6, base.weights);
  EXPECT_GT(plan_memory(q).workspace, 0);

  PlanSpec longer = s;
  longer.seq = 4096;  // logits would be 1.5 GiB: the fused head takes over
  const MemoryPlan l = plan_memory(longer);
  EXPECT_TRUE(l.fused_head);
  EXPECT_LT(l.lm_head, base.lm_head);
  EXPECT_NEAR(static_cast<double>(l.activations) / static_cast<double>(base.activations), 8.0,
              0.01);

  PlanSpec drop = s;
  drop.lora.dropout = 0.1;  // each adapter keeps its dropped input
  EXPECT_GT(plan_memory(drop).activations, base.activations);
  PlanSpec few = s;
  few.lora.targets = {"q_proj", "v_proj"};
  EXPECT_EQ(plan_memory(few).lora_params, 30 * 16 * ((576 + 576) + (576 + 192)));

  // DoRA adds a magnitude per output row of each adapted projection, trained like A and B (so
  // in the AdamW state too), and its op keeps one more (N, out) per projection.
  PlanSpec dora = few;
  dora.lora.dora = true;
  const MemoryPlan d = plan_memory(dora);
  EXPECT_EQ(d.lora_params, plan_memory(few).lora_params + 30 * (576 + 192));
  EXPECT_EQ(d.optimizer, 2 * 4 * d.lora_params);
  EXPECT_GT(d.activations, plan_memory(few).activations);
}

TEST(Plan, MemorySizes) {
  EXPECT_EQ(parse_memory_size("16G", "x"), int64_t{16} << 30);
  EXPECT_EQ(parse_memory_size("512M", "x"), int64_t{512} << 20);
  EXPECT_EQ(parse_memory_size("1.5GiB", "x"), int64_t{3} << 29);
  EXPECT_EQ(parse_memory_size("4096", "x"), 4096);
  EXPECT_EQ(parse_memory_size("none", "x"), -1);
  for (const char* bad : {"", "G", "12Q", "-1G", "0"}) {
    try {
      parse_memory_size(bad, "--memory-limit");
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--memory-limit"), std::string::npos);
    }
  }
  EXPECT_GT(available_memory_bytes(), 0);
  EXPECT_GT(current_rss_bytes(), 0);
}

TEST(Plan, PlanPrintsEveryTerm) {
  auto r = test::run_hone("plan " + kRecipe);
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* term : {"weights", "adapters", "optimizer state", "activations", "lm head",
                           "gradient fold", "predicted peak", "available", "s/step"})
    EXPECT_NE(r.out.find(term), std::string::npos) << term << "\n" << r.out;
  // The quickstart's logits are small: unfused unless the recipe asks.
  EXPECT_NE(r.out.find("logits + grad"), std::string::npos) << r.out;
  auto fused = test::run_hone("plan " + kRecipe + " training.fused_lm_head=true");
  ASSERT_EQ(fused.status, 0) << fused.out;
  EXPECT_NE(fused.out.find("fused with the loss"), std::string::npos) << fused.out;
}

TEST(Plan, MemoryKeysReachTheModelTrainLoads) {
  for (const char* mode : {"auto", "true", "false"}) {
    hone::Run run;
    run.cfg = load_recipe(kRecipe, {std::string("training.fused_lm_head=") + mode,
                                    "training.activation_checkpointing=true"});
    load_base(run);
    EXPECT_EQ(run.model->fused_loss_bytes(), run.cfg.training.fused_loss_bytes()) << mode;
    EXPECT_TRUE(run.model->activation_checkpointing());
  }
}

TEST(Plan, TrainRefusesARunThatDoesNotFit) {
  test::TempDir tmp;
  const std::string out = tmp.file("run");
  auto r = test::run_hone("train " + kRecipe + " output.dir=" + out + " --memory-limit 20M");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("quickstart.yaml: predicted peak memory"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("exceeds the 20.0 MiB available"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("training.activation_checkpointing=true"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("training.fused_lm_head=true"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("data.seq_len=128"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("training.batch_size=4"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out)) << "a refused run must write nothing";
  auto bad = test::run_hone("train " + kRecipe + " output.dir=" + out + " --memory-limit lots");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.out.find("--memory-limit: expected a size"), std::string::npos) << bad.out;
}

// Peak RSS of `hone train` (5 steps) from /usr/bin/time against `hone plan`'s prediction.
void expect_prediction_close(const std::string& extra) {
  test::TempDir tmp;
  auto plan = test::run_hone("plan " + kRecipe + " " + extra);
  ASSERT_EQ(plan.status, 0) << plan.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(plan.out, m, std::regex(R"(predicted peak +([0-9.]+) MiB)")))
      << plan.out;
  const double predicted_mib = std::stod(m[1]);
  const std::string cmd =
      "/usr/bin/time -f 'maxrss %M' " + std::string(HONE_BINARY_DIR) + "/hone -q train " + kRecipe +
      " " + extra +
      " training.max_steps=5 scheduler.warmup_steps=1 eval.every=0 output.dir=" + tmp.file("run") +
      " 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ASSERT_EQ(pclose(p), 0) << out;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(maxrss ([0-9]+))"))) << out;
  const double measured_mib = std::stod(m[1]) / 1024;
  EXPECT_NEAR(predicted_mib / measured_mib, 1.0, 0.15)
      << "predicted " << predicted_mib << " MiB, measured " << measured_mib << " MiB";
}

// The data term: a bound from the corpus's bytes before it is tokenized, the token stores'
// exact size once they are cached, and part of the training peak.
TEST(Plan, DataTermCountsTheTokenStores) {
  test::TempDir tmp;
  const fs::path samples = fs::path(HONE_SOURCE_DIR) / "data" / "samples" / "tinyshakespeare";
  fs::copy_file(samples / "train.txt", tmp.path() / "train.txt");
  fs::copy_file(samples / "val.txt", tmp.path() / "val.txt");
  const RecipeConfig cfg = load_recipe(
      kRecipe, {"data.train=" + tmp.file("train.txt"), "data.val=" + tmp.file("val.txt")});
  const int32_t vocab = 512;
  const int64_t bytes = static_cast<int64_t>(fs::file_size(tmp.path() / "train.txt") +
                                             fs::file_size(tmp.path() / "val.txt"));
  const int64_t bound = planned_data_bytes(cfg, vocab);
  EXPECT_GE(bound, 2 * bytes);  // uint16 ids, at most one a byte
  EXPECT_LE(bound, 2 * bytes * 11 / 10 + 4096);

  auto tok = load_tokenizer(cfg.model.tokenizer);
  TextTokenStats st;
  load_text_data(text_data_options(cfg), *tok, &st);
  EXPECT_EQ(st.tokenized, 2);
  EXPECT_LE(st.mapped_bytes, bound);
  EXPECT_EQ(planned_data_bytes(cfg, vocab), st.mapped_bytes);  // the cached stores, exactly

  PlanSpec s;
  s.model = model_shape("smollm2-135m");
  s.lora.rank = 8;
  s.lora.targets = {"all-linear"};
  const MemoryPlan without = plan_memory(s);
  s.data_bytes = st.mapped_bytes;
  const MemoryPlan with = plan_memory(s);
  EXPECT_EQ(with.data, st.mapped_bytes);
  EXPECT_EQ(with.train_peak - without.train_peak, st.mapped_bytes);
  EXPECT_NE(plan_report(s, with, 1.0, 0).find("token ids of the corpus"), std::string::npos);
}

TEST(Plan, PredictionWithin15PercentOfMeasuredPeak) {
  if (!fs::exists("/usr/bin/time")) GTEST_SKIP() << "needs /usr/bin/time (Debian package time)";
  expect_prediction_close("");
  expect_prediction_close("training.activation_checkpointing=true model.dtype=q4_0");
  expect_prediction_close("model.dtype=bf16 data.seq_len=128");
  expect_prediction_close("training.fused_lm_head=true model.dtype=q8_0");
}

}  // namespace
