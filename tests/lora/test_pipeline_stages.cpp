// Pipeline stages chained by hand in one process: each stage loads only its layers, holds only
// their adapters (its arena the slice of the whole model's), runs embed / run_blocks / head_loss,
// passes its output forward and the input gradient back (Tape::backward_from). The loss and every
// adapter gradient must be bitwise the whole model's, with activation checkpointing, LoRA
// dropout, packed segments and the fused LM head, over two micro-batches (the dropout generator
// advances alike on every stage).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>

#include "common.h"
#include "lora/lora.h"
#include "lora/peft.h"
#include "model/io/model_files.h"
#include "model/io/safetensors.h"
#include "model/random_weights.h"
#include "tiny_model.h"
#include "tmpdir.h"

using namespace hone;

namespace {

struct Stage {
  std::unique_ptr<Transformer> model;
  std::unique_ptr<LoraAdapters> adapters;
};

struct StageSetup {
  std::string dir;  // fixture folder, or "" for the in-memory random model
  ModelConfig config;
  std::map<std::string, Tensor> tensors;  // the random model's weights
  DType dtype = DType::F32;
  LoraConfig lora;
  bool checkpointing = false;
  bool fused_head = false;
};

std::unique_ptr<Transformer> make_model(const StageSetup& s, LayerRange r) {
  std::unique_ptr<Transformer> m;
  if (s.dir.empty()) {
    m = std::make_unique<Transformer>(s.config, s.tensors, s.dtype, r);
  } else {
    ModelFiles f = load_model_files(s.dir, r);  // only the stage's tensors
    m = std::make_unique<Transformer>(f.config, f.tensors, s.dtype, r);
  }
  m->set_activation_checkpointing(s.checkpointing);
  if (s.fused_head) m->set_fused_loss_bytes(0);
  return m;
}

Stage make_stage(const StageSetup& s, LayerRange r) {
  Stage st;
  st.model = make_model(s, r);
  st.adapters = std::make_unique<LoraAdapters>(*st.model, s.lora);
  return st;
}

struct Batch {
  std::vector<int32_t> ids, targets, starts;
  int64_t batch = 2, seq = 11;
  bool packed = false;
};

Batch make_batch(const ModelConfig& c, uint64_t seed, bool packed) {
  Batch b;
  b.packed = packed;
  Rng r(seed);
  const int64_t n = b.batch * b.seq;
  for (int64_t i = 0; i < n; ++i) {
    b.ids.push_back(static_cast<int32_t>(r.next_u64() % c.vocab_size));
    b.targets.push_back(static_cast<int32_t>(r.next_u64() % c.vocab_size));
    b.starts.push_back(i % b.seq < 4 ? 0 : 4);
  }
  b.targets[5] = -100;
  return b;
}

// The whole model's loss; gradients accumulate into its arena.
float whole_step(const Transformer& m, const Batch& b) {
  Tape tape;
  Var l = m.loss(&tape, b.ids, b.targets, b.batch, b.seq, b.packed ? &b.starts : nullptr);
  tape.backward(l);
  return l.value().data<float>()[0];
}

// The stages chained: forward passes each stage's output value to the next as a fresh leaf that
// requires grad, backward passes that leaf's gradient to the previous stage as the seed.
float staged_step(std::vector<Stage>& stages, const Batch& b) {
  const std::vector<int32_t>* seg = b.packed ? &b.starts : nullptr;
  const size_t n = stages.size();
  std::vector<Tape> tapes(n);
  std::vector<Var> in(n), out(n);
  Var loss;
  for (size_t k = 0; k < n; ++k) {
    const Transformer& m = *stages[k].model;
    in[k] = k == 0 ? m.embed(&tapes[k], b.ids, b.batch, b.seq)
                   : Var(out[k - 1].value().clone(), true);  // as received from stage k-1
    out[k] = m.run_blocks(&tapes[k], in[k], b.batch, b.seq, seg);
    if (k + 1 == n) loss = m.head_loss(&tapes[k], out[k], b.targets);
  }
  tapes[n - 1].backward(loss);
  for (size_t k = n - 1; k-- > 0;) {
    // What stage k+1 sends back: the gradient of its input (zeros if nothing reached it).
    Tensor g = in[k + 1].has_grad() ? in[k + 1].grad().clone()
                                    : Tensor::zeros(out[k].dtype(), out[k].shape());
    tapes[k].backward_from(out[k], g);
  }
  return loss.value().data<float>()[0];
}

bool same_bytes(const void* a, const void* b, size_t n) {
  return n == 0 || std::memcmp(a, b, n) == 0;
}

void copy(const Tensor& from, Tensor to) {
  ASSERT_EQ(from.nbytes(), to.nbytes());
  if (from.nbytes()) std::memcpy(to.raw(), from.raw(), from.nbytes());
}

// Stage ranges, whole model vs stages: two micro-batches accumulated (the second one's dropout
// masks come from the generator state the first left), then loss and gradients compared bitwise.
void expect_stages_match(const StageSetup& s, const std::vector<LayerRange>& ranges) {
  auto whole_model = make_model(s, {});
  LoraAdapters whole(*whole_model, s.lora);
  std::vector<Stage> stages;
  for (LayerRange r : ranges) stages.push_back(make_stage(s, r));

  // Each stage's arena is the slice of the whole one: same initial values. Then non-zero B
  // everywhere (set on the whole arena, copied slice by slice) so every gradient flows.
  const size_t es = dtype_size(whole.values().dtype());
  int64_t at = 0;
  for (Stage& st : stages) {
    LoraAdapters& a = *st.adapters;
    ASSERT_EQ(a.arena_offset(), at);
    ASSERT_EQ(a.full_num_parameters(), whole.num_parameters());
    ASSERT_TRUE(same_bytes(a.values().raw(),
                           static_cast<const char*>(whole.values().raw()) + at * es,
                           a.values().nbytes()));
    at += a.num_parameters();
  }
  ASSERT_EQ(at, whole.num_parameters());
  Rng r(21);
  float* v = whole.values().data<float>();
  for (int64_t i = 0; i < whole.values().numel(); ++i) v[i] = static_cast<float>(r.normal() * 0.1);
  for (Stage& st : stages)
    if (st.adapters->num_parameters() > 0)  // a stage may hold no adapted layer
      std::memcpy(st.adapters->values().raw(),
                  static_cast<const char*>(whole.values().raw()) + st.adapters->arena_offset() * es,
                  st.adapters->values().nbytes());

  whole.zero_grad();
  for (Stage& st : stages) st.adapters->zero_grad();
  for (uint64_t micro = 0; micro < 2; ++micro) {
    const Batch b = make_batch(s.config, 100 + micro, micro == 1);
    const float lw = whole_step(*whole_model, b);
    const float ls = staged_step(stages, b);
    EXPECT_TRUE(same_bytes(&lw, &ls, sizeof lw))
        << "micro-batch " << micro << ": " << lw << " vs " << ls;
    for (Stage& st : stages)
      EXPECT_EQ(st.adapters->dropout_rng().state(), whole.dropout_rng().state());
  }
  int64_t differ = 0, nonzero = 0;
  for (Stage& st : stages) {
    LoraAdapters& a = *st.adapters;
    const float* g = a.grads().data<float>();
    const float* w = whole.grads().data<float>() + a.arena_offset();
    for (int64_t i = 0; i < a.num_parameters(); ++i) {
      if (!same_bytes(&g[i], &w[i], sizeof(float))) ++differ;
      if (w[i] != 0.0f) ++nonzero;
    }
  }
  EXPECT_EQ(differ, 0) << "of " << whole.num_parameters() << " gradient elements";
  EXPECT_GT(nonzero, whole.num_parameters() / 2);  // real gradients, not all zero
}

LoraConfig lora_all(double dropout) {
  LoraConfig c;
  c.rank = 4;
  c.alpha = 8;
  c.dropout = dropout;
  c.targets = {"all-linear"};
  c.seed = 3;
  return c;
}

// Every combination of checkpointing, dropout and fused head for the given ranges.
void expect_all_modes_match(StageSetup s, const std::vector<std::vector<LayerRange>>& splits) {
  for (bool ckpt : {false, true})
    for (double dropout : {0.0, 0.25})
      for (bool fused : {false, true}) {
        SCOPED_TRACE(std::string(ckpt ? "checkpointing" : "plain") + ", dropout " +
                     std::to_string(dropout) + (fused ? ", fused head" : ""));
        s.checkpointing = ckpt;
        s.fused_head = fused;
        s.lora.dropout = dropout;
        for (const auto& ranges : splits) {
          std::string desc;
          for (LayerRange r : ranges) desc += r.str();
          SCOPED_TRACE(desc);
          expect_stages_match(s, ranges);
        }
      }
}

StageSetup fixture(const std::string& dir) {
  StageSetup s;
  s.dir = dir;
  s.config = load_model_files(dir, {0, 0}).config;
  s.lora = lora_all(0);
  return s;
}

// tiny-llama: untied head, GQA. Two stages, and three with an embedding-only or head-only stage.
TEST(PipelineStages, TinyLlamaBitwise) {
  HONE_REQUIRE_SHARED(dir, "fixtures/models/tiny-llama");
  expect_all_modes_match(fixture(dir),
                         {{{0, 1}, {1, 2}}, {{0, 1}, {1, 2}, {2, 2}}, {{0, 0}, {0, 1}, {1, 2}}});
}

// tiny-qwen2: tied head (the last stage holds the embedding matrix as head), q/k/v biases.
TEST(PipelineStages, TinyQwen2TiedBitwise) {
  HONE_REQUIRE_SHARED(dir, "fixtures/models/tiny-qwen2");
  expect_all_modes_match(fixture(dir), {{{0, 1}, {1, 2}}, {{0, 1}, {1, 2}, {2, 2}}});
}

// stories260K (5 layers, tied, intermediate 172): three stages of real blocks; adapters only on
// layers 0 and 3, so the middle stage has an empty arena yet carries the gradient through.
TEST(PipelineStages, Stories260KThreeStagesBitwise) {
  HONE_REQUIRE_SHARED(dir, "fixtures/models/stories260K");
  StageSetup s = fixture(dir);
  expect_all_modes_match(s, {{{0, 2}, {2, 5}}, {{0, 1}, {1, 3}, {3, 5}}});
  s.lora.targets = {"q_proj", "v_proj", "down_proj"};
  s.lora.layers = {0, 3};
  expect_all_modes_match(s, {{{0, 1}, {1, 3}, {3, 5}}});
}

// An untied 4-layer model in memory (three stages of real blocks) and tiny-llama with a Q4_0 base.
TEST(PipelineStages, UntiedThreeStagesAndQuantizedBase) {
  StageSetup s;
  s.config = test::tiny_model({.layers = 4});
  s.tensors = random_weights(s.config, 9);
  s.lora = lora_all(0);
  expect_all_modes_match(s, {{{0, 1}, {1, 3}, {3, 4}}});

  HONE_REQUIRE_SHARED(dir, "fixtures/models/tiny-llama");
  StageSetup q = fixture(dir);
  q.dtype = DType::Q4_0;
  expect_all_modes_match(q, {{{0, 1}, {1, 2}}});
}

// DoRA: each stage initialises its magnitudes from its own layers' weights, and the stages'
// arenas, losses and gradients are still bitwise the whole model's (float and Q4_0 bases).
TEST(PipelineStages, DoraBitwise) {
  for (DType d : {DType::F32, DType::Q4_0}) {
    SCOPED_TRACE(dtype_name(d));
    StageSetup s;
    s.config = test::tiny_model({.layers = 3, .heads = 4, .kv_heads = 2});
    s.config.intermediate_size = 96;
    s.tensors = random_weights(s.config, 9);
    s.dtype = d;
    s.lora = lora_all(0);
    s.lora.dora = true;
    expect_all_modes_match(s, {{{0, 1}, {1, 3}}});
  }
}

// The arena of a stage is the whole arena's slice, tensor by tensor: the same modules in the same
// order at the same offsets, and the same initial A (drawn after the earlier layers' draws).
TEST(PipelineStages, StageArenaIsTheSliceOfTheWholeArena) {
  HONE_REQUIRE_SHARED(dir, "fixtures/models/stories260K");
  StageSetup s = fixture(dir);
  s.lora.targets = {"q_proj", "k_proj", "o_proj", "up_proj", "down_proj"};
  auto wm = make_model(s, {});
  LoraAdapters whole(*wm, s.lora);
  EXPECT_EQ(whole.arena_offset(), 0);
  EXPECT_EQ(whole.full_num_parameters(), whole.num_parameters());
  EXPECT_EQ(whole.full_num_modules(), static_cast<int64_t>(whole.tensors().size()));
  // The whole arena is layer-major.
  for (size_t i = 1; i < whole.tensors().size(); ++i)
    EXPECT_LT(whole.tensors()[i - 1].a.value().raw(), whole.tensors()[i].a.value().raw());
  auto offset_of = [](LoraAdapters& a, const Var& v) {
    return (static_cast<const char*>(v.value().raw()) -
            static_cast<const char*>(a.values().raw())) /
           static_cast<int64_t>(sizeof(float));
  };
  size_t module = 0;
  for (LayerRange r : {LayerRange{0, 2}, LayerRange{2, 3}, LayerRange{3, 3}, LayerRange{3, 5}}) {
    SCOPED_TRACE(r.str());
    Stage st = make_stage(s, r);
    LoraAdapters& a = *st.adapters;
    EXPECT_EQ(a.full_num_parameters(), whole.num_parameters());
    EXPECT_EQ(a.full_num_modules(), whole.full_num_modules());
    EXPECT_EQ(a.tensors().size(), static_cast<size_t>(r.last - r.first) * 5);
    for (const LoraTensor& t : a.tensors()) {
      ASSERT_LT(module, whole.tensors().size());
      const LoraTensor& w = whole.tensors()[module++];
      EXPECT_EQ(t.module, w.module);
      EXPECT_EQ(a.arena_offset() + offset_of(a, t.a), offset_of(whole, w.a));
      EXPECT_EQ(a.arena_offset() + offset_of(a, t.b), offset_of(whole, w.b));
      EXPECT_TRUE(same_bytes(t.a.value().raw(), w.a.value().raw(), t.a.value().nbytes()));
    }
  }
  EXPECT_EQ(module, whole.tensors().size());
}

// Block l's dropout masks depend on (base state, l) only: a stage starting at layer l, whose
// generator starts from the same base, draws what the whole model's block l draws. A forward
// without a tape (evaluation) leaves the generator where it was; one with a tape advances it
// one step from the base, whatever the blocks drew.
TEST(PipelineStages, DropoutStateIsPerLayer) {
  EXPECT_NE(Transformer::block_dropout_state(7, 0), Transformer::block_dropout_state(7, 1));
  EXPECT_NE(Transformer::block_dropout_state(7, 0), Transformer::block_dropout_state(8, 0));
  EXPECT_NE(Transformer::next_dropout_base(7), 7u);
  ModelConfig c = test::tiny_model({.layers = 3});
  Transformer m(c, random_weights(c, 2));
  LoraAdapters ad(m, lora_all(0.5));
  const Batch b = make_batch(c, 5, false);
  const uint64_t base = ad.dropout_rng().state();
  m.loss(nullptr, b.ids, b.targets, b.batch, b.seq);
  EXPECT_EQ(ad.dropout_rng().state(), base);
  Tape t;
  m.loss(&t, b.ids, b.targets, b.batch, b.seq);
  EXPECT_EQ(ad.dropout_rng().state(), Transformer::next_dropout_base(base));
}

}  // namespace

// The process that writes the adapter holds no whole model: the model-less full adapters take
// the stages' arenas at their offsets and write the PEFT file byte for byte as the whole model's
// adapters do; a full PEFT file read into them gives each stage its slice back.
TEST(PipelineStages, GatheredStagesWriteTheWholeModelsPeftFile) {
  HONE_REQUIRE_SHARED(dir, "fixtures/models/stories260K");
  StageSetup s = fixture(dir);
  s.lora.targets = {"q_proj", "v_proj", "gate_proj"};
  auto wm = make_model(s, {});
  LoraAdapters whole(*wm, s.lora);
  LoraAdapters gathered(s.config, s.lora);
  ASSERT_EQ(gathered.num_parameters(), whole.num_parameters());
  EXPECT_EQ(gathered.arena_offset(), 0);
  ASSERT_EQ(gathered.tensors().size(), whole.tensors().size());
  for (size_t i = 0; i < whole.tensors().size(); ++i) {
    EXPECT_EQ(gathered.tensors()[i].module, whole.tensors()[i].module);
    EXPECT_EQ(gathered.tensors()[i].a.shape(), whole.tensors()[i].a.shape());
    EXPECT_EQ(gathered.tensors()[i].b.shape(), whole.tensors()[i].b.shape());
  }
  EXPECT_TRUE(same_bytes(gathered.values().raw(), whole.values().raw(), whole.values().nbytes()));

  Rng r(4);
  float* v = whole.values().data<float>();
  for (int64_t i = 0; i < whole.values().numel(); ++i) v[i] = static_cast<float>(r.normal());
  std::vector<Stage> stages;
  for (LayerRange lr : {LayerRange{0, 2}, LayerRange{2, 5}}) {
    stages.push_back(make_stage(s, lr));
    LoraAdapters& a = *stages.back().adapters;
    copy(whole.values().slice0(a.arena_offset(), a.arena_offset() + a.num_parameters()),
         a.values());
  }
  gathered.values().fill_zero();
  for (Stage& st : stages) {
    LoraAdapters& a = *st.adapters;
    copy(a.values(),
         gathered.values().slice0(a.arena_offset(), a.arena_offset() + a.num_parameters()));
  }
  test::TempDir tmp;
  save_peft_adapter(tmp.file("whole"), whole, "base");
  save_peft_adapter(tmp.file("gathered"), gathered, "base");
  for (const char* f : {"adapter_model.safetensors", "adapter_config.json"})
    EXPECT_EQ(test::read_bytes(tmp.file("whole") + "/" + f),
              test::read_bytes(tmp.file("gathered") + "/" + f))
        << f;

  LoraAdapters back(s.config, s.lora);
  load_peft_weights(back, tmp.file("whole") + "/adapter_model.safetensors");
  for (Stage& st : stages) {
    LoraAdapters& a = *st.adapters;
    Tensor slice = back.values().slice0(a.arena_offset(), a.arena_offset() + a.num_parameters());
    EXPECT_TRUE(same_bytes(slice.raw(), a.values().raw(), a.values().nbytes()));
  }
}
