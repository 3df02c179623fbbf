// The rank layout (recipes/parallel/layout.h) and the plan of a run across ranks: refusals that
// name the nearest valid layouts, the blocks each stage holds, the bytes a step sends worked out
// by hand from the exchange's definition, a stage's memory as its share of the whole, and the
// README's Llama-3-70B / Llama-3.1-405B plans (bench/plans/) fitting 24 GiB nodes at the stated
// stage counts and not with one fewer.
#include <gtest/gtest.h>

#include "hone_process.h"
#include "model/shapes.h"
#include "recipes/parallel/layout.h"
#include "recipes/plan_parallel.h"
#include "recipes/recipe.h"
#include "tiny_model.h"

using namespace hone;

namespace {

const std::string kQuickstart = std::string(HONE_SOURCE_DIR) + "/recipes/configs/quickstart.yaml";

std::string refusal(int64_t ranks, int64_t stages, int64_t accum, int64_t layers,
                    const std::string& flag = "--ranks") {
  try {
    make_rank_layout(ranks, stages, accum, layers, flag);
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(RankLayout, RefusalsNameTheNearestValidValues) {
  EXPECT_EQ(refusal(4, 1, 6, 30),
            "grad_accum 6 does not divide among 4 data-parallel ranks; use --ranks 2, 3 or 6, or "
            "training.grad_accum=4 or 8");
  // With 2 stages the rank counts are twice the data-parallel degrees.
  EXPECT_EQ(refusal(6, 2, 4, 30),
            "grad_accum 4 does not divide among 3 data-parallel ranks; use --ranks 4 or 8, or "
            "training.grad_accum=3 or 6");
  // Fewer micro-batches than ranks: no multiple of D below M.
  EXPECT_EQ(refusal(4, 1, 3, 30),
            "grad_accum 3 does not divide among 4 data-parallel ranks; use --ranks 3, or "
            "training.grad_accum=4");
  // At most the three degrees nearest the one asked.
  EXPECT_EQ(refusal(5, 1, 24, 30, "mpirun -np"),
            "grad_accum 24 does not divide among 5 data-parallel ranks; use mpirun -np 3, 4 or 6, "
            "or training.grad_accum=20 or 25");
  EXPECT_EQ(refusal(7, 3, 8, 80),
            "--ranks 7 is not a multiple of the 3 pipeline stages; use --ranks 6 or 12");
  EXPECT_EQ(refusal(2, 3, 8, 80),
            "--ranks 2 is not a multiple of the 3 pipeline stages; use --ranks 3");
  EXPECT_EQ(refusal(4, 5, 8, 4),
            "5 pipeline stages exceed the model's 4 blocks (a stage holds at least one block); "
            "use 4 stages or fewer");
  EXPECT_NE(refusal(0, 1, 8, 4).find("--ranks must be > 0"), std::string::npos);

  const RankLayout l = make_rank_layout(12, 3, 8, 80);
  EXPECT_EQ(l.ranks, 12);
  EXPECT_EQ(l.stages, 3);
  EXPECT_EQ(l.data, 4);
  EXPECT_EQ(refusal(1, 1, 1, 1), "(accepted)");
}

TEST(RankLayout, StagesSplitTheBlocksEvenlyFirstStagesTakingTheExtra) {
  EXPECT_EQ(stage_layers(10, 3, 0), (LayerRange{0, 4}));
  EXPECT_EQ(stage_layers(10, 3, 1), (LayerRange{4, 7}));
  EXPECT_EQ(stage_layers(10, 3, 2), (LayerRange{7, 10}));
  EXPECT_EQ(stage_layers(80, 3, 2), (LayerRange{54, 80}));
  EXPECT_EQ(stage_layers(126, 21, 20), (LayerRange{120, 126}));
  for (int64_t L : {1, 5, 30, 80, 126})
    for (int64_t S = 1; S <= std::min<int64_t>(L, 9); ++S) {
      int64_t next = 0;
      for (int64_t s = 0; s < S; ++s) {
        const LayerRange r = stage_layers(L, S, s);
        EXPECT_EQ(r.first, next);
        EXPECT_EQ(r.count(), L / S + (s < L % S ? 1 : 0));
        for (int64_t l = r.first; l < r.last; ++l) EXPECT_EQ(stage_of_layer(L, S, l), s);
        next = r.last;
      }
      EXPECT_EQ(next, L) << L << " blocks, " << S << " stages";
    }
  // 1F1B: at most S - s micro-batches in flight, never more than the replica has.
  EXPECT_EQ(micro_batches_in_flight(8, 4, 0), 4);
  EXPECT_EQ(micro_batches_in_flight(8, 4, 3), 1);
  EXPECT_EQ(micro_batches_in_flight(2, 4, 0), 2);
}

TEST(RankLayout, BytesSentFollowTheExchange) {
  // Pipeline: B=2, T=16, C=64 -> 8192 bytes a hidden state; 2 micro-batches a replica.
  const int64_t h = 2 * 16 * 64 * 4;
  EXPECT_EQ(pp_bytes_sent(2, h, 1, 0), 0);
  EXPECT_EQ(pp_bytes_sent(2, h, 3, 0), 2 * h);      // forward only
  EXPECT_EQ(pp_bytes_sent(2, h, 3, 1), 2 * 2 * h);  // forward and backward
  EXPECT_EQ(pp_bytes_sent(2, h, 3, 2), 2 * h);      // backward only

  // Data parallel: P = 1000 over D = 3 replicas -> slices of 333, 333, 334; k = 2 gradients each.
  EXPECT_EQ(dp_slice(1000, 3, 0).begin, 0);
  EXPECT_EQ(dp_slice(1000, 3, 1).begin, 333);
  EXPECT_EQ(dp_slice(1000, 3, 2).size(), 334);
  EXPECT_EQ(dp_scatter_bytes_sent(1000, 3, 2, 2), 2 * (1000 - 334) * 4);
  EXPECT_EQ(dp_allgather_bytes_sent(1000, 3, 2), 2 * 334 * 4);
  EXPECT_EQ(dp_bytes_sent(1000, 3, 2, 0), 2 * 667 * 4 + 2 * 333 * 4);
  // Summed over the replicas: D · (k·P·4·(D-1)/D + P·4·(D-1)/D).
  int64_t total = 0;
  for (int64_t j = 0; j < 3; ++j) total += dp_bytes_sent(1000, 3, 2, j);
  EXPECT_EQ(total, 2 * 1000 * 4 * 2 + 1000 * 4 * 2);
  EXPECT_EQ(dp_bytes_sent(1000, 1, 8, 0), 0);
  // Buffers: D = 1 the fold accumulator; else k gradients kept apart and M slices received.
  EXPECT_EQ(dp_buffer_bytes(1000, 1, 8), 4000);
  EXPECT_EQ(dp_buffer_bytes(1000, 1, 1), 0);  // one micro-batch: no fold
  EXPECT_EQ(dp_buffer_bytes(1000, 2, 4), 4 * 1000 * 4 + 4 * 2 * 500 * 4);
  EXPECT_EQ(dp_buffer_bytes(1000, 3, 2), 2 * 1000 * 4 + 2 * 3 * 334 * 4);
}

PlanSpec small_spec(bool tied) {
  PlanSpec s;
  s.model = test::tiny_model(
      {.hidden = 64, .intermediate = 96, .layers = 5, .vocab = 96, .max_positions = 64});
  s.model.tie_word_embeddings = tied;
  s.weight_dtype = DType::Q8_0;
  s.lora.rank = 4;
  s.lora.targets = {"all-linear"};
  s.batch = 2;
  s.seq = 16;
  s.checkpointing = true;
  return s;
}

TEST(ParallelPlan, BytesOnASmallConfigByHand) {
  const PlanSpec s = small_spec(false);
  // 3 stages (blocks 0-1, 2-3, 4) x 2 replicas, 8 micro-batches: 4 a replica.
  const ParallelPlan p = plan_parallel(s, make_rank_layout(6, 3, 8, 5), 8, 100, 1e9);
  ASSERT_EQ(p.stages.size(), 3u);
  const int64_t h = 2 * 16 * 64 * 4;
  EXPECT_EQ(p.hidden_state_bytes, h);
  // Adapter parameters per block: r · (in + out) over the seven projections (q 64->64, k and v
  // 64->32, o 64->64, gate and up 64->96, down 96->64).
  const int64_t per_block = 4 * ((64 + 64) + 2 * (64 + 32) + (64 + 64) + 3 * (64 + 96));
  const int64_t blocks[3] = {2, 2, 1};
  for (int i = 0; i < 3; ++i) {
    const StagePlan& st = p.stages[i];
    const int64_t P = per_block * blocks[i];
    EXPECT_EQ(st.memory.lora_params, P) << i;
    EXPECT_EQ(st.pp_bytes, 4 * h * (i == 1 ? 2 : 1)) << i;
    // D = 2, k = 4: send the other replica's half of each of 4 gradients, then our folded half.
    const int64_t half = P / 2;  // P is even here
    EXPECT_EQ(st.dp_bytes, 4 * half * 4 + half * 4) << i;
    EXPECT_EQ(st.memory.dp_buffers, 4 * P * 4 + 4 * 2 * half * 4) << i;
    EXPECT_EQ(st.spec.in_flight, std::min<int64_t>(4, 3 - i));
  }
  EXPECT_EQ(p.busiest_bytes, p.stages[1].pp_bytes + p.stages[1].dp_bytes);
  // Step: (M/D + S - 1) · t_mb / S, plus the busiest rank's bytes at 1 GB/s.
  const double t_mb = plan_memory(s).executed_flops / 100e9;
  EXPECT_DOUBLE_EQ(p.micro_batch_seconds, t_mb);
  EXPECT_DOUBLE_EQ(p.compute_seconds, (4 + 3 - 1) * t_mb / 3);
  EXPECT_DOUBLE_EQ(p.comm_seconds, static_cast<double>(p.busiest_bytes) / 1e9);
  EXPECT_DOUBLE_EQ(p.step_seconds, p.compute_seconds + p.comm_seconds);
}

TEST(ParallelPlan, AStageHoldsItsShareOfTheWhole) {
  for (bool tied : {false, true}) {
    PlanSpec s = small_spec(tied);
    const MemoryPlan whole = plan_memory(s);
    EXPECT_EQ(whole.dp_buffers, 0);  // one micro-batch a step: no fold accumulator
    // One micro-batch a step: one in flight everywhere, so activations add up too.
    const ParallelPlan p = plan_parallel(s, make_rank_layout(2, 2, 1, 5), 1, 100, 1e9);
    int64_t weights = 0, params = 0, activations = 0;
    for (const StagePlan& st : p.stages) {
      EXPECT_LT(st.memory.peak, whole.peak);
      EXPECT_LT(st.memory.weights, whole.weights);
      weights += st.memory.weights;
      params += st.memory.lora_params;
      activations += st.memory.activations;
      EXPECT_EQ(st.memory.backward, whole.backward);  // one block's backward on each
    }
    EXPECT_EQ(params, whole.lora_params);
    // The tied head keeps the embedding matrix on the last stage as well.
    const int64_t embedding = static_cast<int64_t>(dtype_nbytes(DType::Q8_0, 96 * 64));
    EXPECT_EQ(weights, whole.weights + (tied ? embedding : 0)) << tied;
    // The second stage keeps the hidden state it received, as the first keeps the embedding's.
    EXPECT_EQ(activations, whole.activations + 2 * 16 * 64 * 4);
    EXPECT_EQ(p.stages[0].memory.lm_head, 0);
    EXPECT_EQ(p.stages[1].memory.lm_head, whole.lm_head);
  }
}

TEST(ParallelPlan, SourceHeldWhileConvertingIsTheStagesOwn) {
  PlanSpec s = small_spec(false);
  for (const char* name : {"model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight",
                           "model.layers.4.mlp.up_proj.weight", "lm_head.weight"}) {
    s.source_tensors.emplace_back(name, 1000);
    s.source_bytes += 1000;
  }
  const ParallelPlan p = plan_parallel(s, make_rank_layout(2, 2, 1, 5), 1, 100, 1e9);
  EXPECT_EQ(p.stages[0].memory.load_extra, 2000);  // embedding, block 0
  EXPECT_EQ(p.stages[1].memory.load_extra, 2000);  // block 4, head
  EXPECT_EQ(plan_memory(s).load_extra, 4000);
}

// The README's plans: bench/plans/<model>.yaml names the fewest stages that fit 24 GiB.
void expect_fewest_stages(const std::string& recipe, const std::string& shape, int64_t stages) {
  const RecipeConfig cfg = load_recipe(std::string(HONE_SOURCE_DIR) + "/bench/plans/" + recipe);
  EXPECT_EQ(cfg.training.pipeline_stages, stages);
  const PlanSpec s = plan_spec_for_shape(cfg, model_shape(shape));
  const int64_t node = int64_t{24} << 30;
  const int64_t M = cfg.training.grad_accum;
  EXPECT_LE(plan_parallel(s, {stages, stages, 1}, M, 0, 0).peak, node);
  EXPECT_GT(plan_parallel(s, {stages - 1, stages - 1, 1}, M, 0, 0).peak, node);
  EXPECT_EQ(smallest_fitting_stages(s, 1, M, node), stages);
}

TEST(ParallelPlan, ReadmePlansFitTheirNodeCounts) {
  expect_fewest_stages("llama3-70b.yaml", "llama3-70b", 3);
  expect_fewest_stages("llama3.1-405b.yaml", "llama3.1-405b", 21);
}

TEST(ParallelPlan, PlanCommand) {
  const std::string plan70 =
      "plan " + std::string(HONE_SOURCE_DIR) + "/bench/plans/llama3-70b.yaml --shape llama3-70b";
  auto r = test::run_hone(plan70 + " --memory-limit 24G --gflops 1000 --link 25Gb/s");
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* s :
       {"3 ranks = 3 pipeline stages x 1 data-parallel replica", "embedding", "norm+head",
        "per-rank peak", "fits", "25 Gb/s link", "(8 + 2) x 879 s / 3"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  auto two = test::run_hone(plan70 + " --stages 2 --memory-limit 24G --gflops 1000");
  ASSERT_EQ(two.status, 0) << two.out;
  EXPECT_NE(two.out.find("DOES NOT FIT (--stages 3 --ranks 3 fits)"), std::string::npos) << two.out;

  auto bad = test::run_hone("plan " + kQuickstart + " --ranks 4 training.grad_accum=6");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.out.find("quickstart.yaml: grad_accum 6 does not divide among 4 data-parallel "
                         "ranks; use --ranks 2, 3 or 6, or training.grad_accum=4 or 8"),
            std::string::npos)
      << bad.out;
  auto link = test::run_hone("plan " + kQuickstart + " --stages 2 --link 10GbE");
  EXPECT_EQ(link.status, 1);
  EXPECT_NE(link.out.find("--link: expected a link speed such as 25Gb/s"), std::string::npos)
      << link.out;
  auto shape = test::run_hone("plan " + kQuickstart + " --shape llama3-7b");
  EXPECT_EQ(shape.status, 1);
  EXPECT_NE(shape.out.find("unknown model shape \"llama3-7b\""), std::string::npos) << shape.out;
  // The quickstart's 5 blocks over 2 stages x 2 replicas, planned from its real files.
  auto dp = test::run_hone("plan " + kQuickstart +
                           " --ranks 4 --stages 2 training.grad_accum=4 --gflops 50");
  ASSERT_EQ(dp.status, 0) << dp.out;
  EXPECT_NE(dp.out.find("4 ranks = 2 pipeline stages x 2 data-parallel replicas"),
            std::string::npos)
      << dp.out;
  EXPECT_NE(dp.out.find(" 0-2 "), std::string::npos) << dp.out;
  EXPECT_NE(dp.out.find(" 3-4 "), std::string::npos) << dp.out;
}

TEST(ParallelPlan, LinkSpeeds) {
  EXPECT_DOUBLE_EQ(parse_link_speed("25Gb/s", "x"), 25e9 / 8);
  EXPECT_DOUBLE_EQ(parse_link_speed("3.2GB/s", "x"), 3.2e9);
  EXPECT_DOUBLE_EQ(parse_link_speed("100Mb/s", "x"), 100e6 / 8);
  for (const char* bad : {"", "25", "25Gbps", "-1Gb/s", "0GB/s", "10GbE"}) {
    try {
      parse_link_speed(bad, "--link");
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--link"), std::string::npos);
    }
  }
}

}  // namespace
