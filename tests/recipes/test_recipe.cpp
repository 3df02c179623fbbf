// The YAML recipe: defaults, every section, and the messages a user sees for a bad recipe.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "recipes/recipe.h"
#include "tmpdir.h"

namespace fs = std::filesystem;
using hone::RecipeConfig;

namespace {

const char* kMinimal = R"(
model:
  path: models/base.bin
data:
  train: corpus/train.txt
output:
  dir: out
)";

RecipeConfig parse(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return hone::parse_recipe(text, "recipe.yaml", "/base", overrides);
}

// The message of the Error parsing throws, or "" when it parses.
std::string error_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    parse(text, overrides);
  } catch (const hone::Error& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('\n', start);
    if (end == std::string::npos) end = s.size();
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool has_line(const std::string& msg, const std::string& line) {
  auto ls = lines(msg);
  return std::find(ls.begin(), ls.end(), line) != ls.end();
}

// Not __FILE__: with CCACHE_BASEDIR it is relative to the build folder, not to where tests run.
fs::path repo_dir() {
  return HONE_SOURCE_DIR;
}

}  // namespace

TEST(RecipeDefaults, MinimalRecipeGetsEveryDefault) {
  RecipeConfig c = parse(kMinimal);
  EXPECT_EQ(c.model.path, "/base/models/base.bin");
  EXPECT_EQ(c.model.tokenizer, "");
  EXPECT_EQ(c.model.dtype, "f32");
  EXPECT_EQ(c.lora.rank, 8);
  EXPECT_EQ(c.lora.alpha, 16.0);
  EXPECT_EQ(c.lora.dropout, 0.0);
  EXPECT_EQ(c.lora.targets, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_TRUE(c.lora.layers.empty());
  EXPECT_FALSE(c.lora.rslora);
  EXPECT_FALSE(c.lora.dora);
  EXPECT_EQ(c.data.train, "/base/corpus/train.txt");
  EXPECT_EQ(c.data.val, "");
  EXPECT_EQ(c.data.val_fraction, 0.0);
  EXPECT_EQ(c.data.format, "text");
  EXPECT_EQ(c.data.seq_len, 512);
  EXPECT_TRUE(c.data.packing);
  EXPECT_TRUE(c.data.add_bos);
  EXPECT_TRUE(c.data.add_eos);
  EXPECT_EQ(c.training.batch_size, 8);
  EXPECT_EQ(c.training.grad_accum, 1);
  EXPECT_FALSE(c.training.max_steps.has_value());
  EXPECT_EQ(c.training.epochs, 1);  // neither given: one epoch
  EXPECT_EQ(c.training.seed, 42u);
  EXPECT_EQ(c.training.grad_clip, 1.0);
  EXPECT_EQ(c.training.threads, 0);
  // Seeds not given follow training.seed.
  EXPECT_EQ(c.lora.seed, 42u);
  EXPECT_EQ(c.data.shuffle_seed, 42u);
  EXPECT_EQ(c.optimizer.name, "adamw");
  hone::AdamWConfig adamw;
  EXPECT_EQ(c.optimizer.lr, adamw.lr);
  EXPECT_EQ(c.optimizer.beta1, adamw.beta1);
  EXPECT_EQ(c.optimizer.beta2, adamw.beta2);
  EXPECT_EQ(c.optimizer.eps, adamw.eps);
  EXPECT_EQ(c.optimizer.weight_decay, adamw.weight_decay);
  EXPECT_EQ(c.optimizer.momentum, 0.0);
  EXPECT_EQ(c.scheduler.name, "cosine");
  EXPECT_EQ(c.scheduler.warmup_steps, 0);
  EXPECT_EQ(c.scheduler.min_lr, 0.0);
  EXPECT_EQ(c.eval.every, 0);
  EXPECT_EQ(c.eval.max_batches, 0);
  EXPECT_EQ(c.output.dir, "/base/out");
  EXPECT_EQ(c.checkpoint.dir, "/base/out/checkpoints");
  EXPECT_EQ(c.checkpoint.every, 0);
  EXPECT_EQ(c.checkpoint.keep, 2);
  EXPECT_EQ(c.logging.every, 10);
  EXPECT_EQ(c.logging.metrics_file, "/base/out/metrics.jsonl");
  EXPECT_EQ(c.source, "recipe.yaml");
}

TEST(RecipeParse, EverySection) {
  RecipeConfig c = parse(R"(
model:
  path: /models/llama
  tokenizer: /models/llama/tokenizer.json
  dtype: bf16
lora:
  rank: 16
  alpha: 32
  dropout: 0.05
  targets: [q_proj, k_proj, v_proj, o_proj]
  layers: [0, 2, 5]
  rslora: true
  dora: true
  seed: 7
data:
  train: /corpus/*.txt
  val: /corpus/val.txt
  format: text
  seq_len: 256
  packing: false
  shuffle_seed: 9
  add_bos: false
  add_eos: no
training:
  batch_size: 4
  grad_accum: 2
  max_steps: 300
  seed: 3
  grad_clip: none
  threads: 2
optimizer:
  name: sgd
  lr: 3e-3
  betas: [0.8, 0.95]
  eps: 1e-6
  weight_decay: 0.01
  momentum: 0.9
scheduler:
  name: linear
  warmup_steps: 20
  min_lr: 1e-5
eval:
  every: 50
  max_batches: 10
checkpoint:
  dir: /ckpt
  every: 100
  keep: 0
output:
  dir: /out
logging:
  every: 5
  metrics_file: /logs/m.jsonl
)");
  EXPECT_EQ(c.model.path, "/models/llama");
  EXPECT_EQ(c.model.tokenizer, "/models/llama/tokenizer.json");
  EXPECT_EQ(c.model.dtype, "bf16");
  EXPECT_EQ(c.lora.rank, 16);
  EXPECT_EQ(c.lora.alpha, 32.0);
  EXPECT_EQ(c.lora.dropout, 0.05);
  EXPECT_EQ(c.lora.targets, (std::vector<std::string>{"q_proj", "k_proj", "v_proj", "o_proj"}));
  EXPECT_EQ(c.lora.layers, (std::vector<int>{0, 2, 5}));
  EXPECT_TRUE(c.lora.rslora);
  EXPECT_TRUE(c.lora.dora);
  EXPECT_EQ(c.lora.seed, 7u);
  EXPECT_EQ(c.data.train, "/corpus/*.txt");
  EXPECT_EQ(c.data.val, "/corpus/val.txt");
  EXPECT_EQ(c.data.seq_len, 256);
  EXPECT_FALSE(c.data.packing);
  EXPECT_EQ(c.data.shuffle_seed, 9u);
  EXPECT_FALSE(c.data.add_bos);
  EXPECT_FALSE(c.data.add_eos);
  EXPECT_EQ(c.training.batch_size, 4);
  EXPECT_EQ(c.training.grad_accum, 2);
  EXPECT_EQ(c.training.max_steps, 300);
  EXPECT_FALSE(c.training.epochs.has_value());
  EXPECT_EQ(c.training.seed, 3u);
  EXPECT_EQ(c.training.grad_clip, 0.0);
  EXPECT_EQ(c.training.threads, 2);
  EXPECT_EQ(c.optimizer.name, "sgd");
  EXPECT_EQ(c.optimizer.lr, 3e-3);
  EXPECT_EQ(c.optimizer.beta1, 0.8);
  EXPECT_EQ(c.optimizer.beta2, 0.95);
  EXPECT_EQ(c.optimizer.eps, 1e-6);
  EXPECT_EQ(c.optimizer.weight_decay, 0.01);
  EXPECT_EQ(c.optimizer.momentum, 0.9);
  hone::AdamWConfig a = c.optimizer.adamw();
  EXPECT_EQ(a.lr, 3e-3);
  EXPECT_EQ(a.beta2, 0.95);
  EXPECT_EQ(a.weight_decay, 0.01);
  EXPECT_EQ(c.scheduler.name, "linear");
  EXPECT_EQ(c.scheduler.warmup_steps, 20);
  EXPECT_EQ(c.scheduler.min_lr, 1e-5);
  EXPECT_EQ(c.eval.every, 50);
  EXPECT_EQ(c.eval.max_batches, 10);
  EXPECT_EQ(c.checkpoint.dir, "/ckpt");
  EXPECT_EQ(c.checkpoint.every, 100);
  EXPECT_EQ(c.checkpoint.keep, 0);
  EXPECT_EQ(c.output.dir, "/out");
  EXPECT_EQ(c.logging.every, 5);
  EXPECT_EQ(c.logging.metrics_file, "/logs/m.jsonl");
}

TEST(RecipeParse, AllLinearAsAScalarAndEpochs) {
  RecipeConfig c = parse(std::string(kMinimal) + R"(
lora:
  targets: all-linear
training:
  epochs: 3
)");
  EXPECT_EQ(c.lora.targets, (std::vector<std::string>{"all-linear"}));
  EXPECT_EQ(c.training.epochs, 3);
  EXPECT_FALSE(c.training.max_steps.has_value());
}

TEST(RecipeErrors, UnknownKeyWithDidYouMean) {
  std::string msg = error_of(std::string(kMinimal) + "lora:\n  rnak: 4\n");
  EXPECT_EQ(msg, "recipe.yaml: lora.rnak: unknown key (did you mean \"rank\"?)");
  msg = error_of(std::string(kMinimal) + "trainig:\n  max_steps: 4\n");
  EXPECT_EQ(msg, "recipe.yaml: trainig: unknown section (did you mean \"training\"?)");
  // Nothing close: no hint.
  msg = error_of(std::string(kMinimal) + "lora:\n  zzzzzzzz: 4\n");
  EXPECT_EQ(msg, "recipe.yaml: lora.zzzzzzzz: unknown key");
}

TEST(RecipeErrors, EveryProblemReportedAtOnce) {
  std::string msg = error_of(R"(
model:
  dtype: fp16
lora:
  rnak: 4
  rank: 0
  dropout: 1.0
optimizer:
  lr: fast
  betas: [0.9, 1.5]
training:
  max_steps: 10
  epochs: 2
)");
  auto ls = lines(msg);
  EXPECT_EQ(ls.size(), 10u) << msg;
  EXPECT_TRUE(has_line(msg, "recipe.yaml: lora.rnak: unknown key (did you mean \"rank\"?)")) << msg;
  EXPECT_TRUE(has_line(msg, "recipe.yaml: lora.rank: must be > 0 (got 0)")) << msg;
  EXPECT_TRUE(has_line(msg, "recipe.yaml: lora.dropout: must be in [0, 1) (got 1)")) << msg;
  EXPECT_TRUE(has_line(msg, "recipe.yaml: optimizer.lr: expected a number, got \"fast\"")) << msg;
  EXPECT_TRUE(has_line(msg, "recipe.yaml: optimizer.betas: beta2 must be in [0, 1) (got 1.5)"))
      << msg;
  EXPECT_TRUE(
      has_line(msg,
               "recipe.yaml: model.dtype: must be one of f32, bf16, f16, q8_0, q4_0 (got \"fp16\") "
               "(did you mean \"f16\"?)"))
      << msg;
  EXPECT_TRUE(has_line(msg,
                       "recipe.yaml: model.path: required key missing (the base model: HF "
                       "folder, .safetensors or llama2.c .bin)"))
      << msg;
  EXPECT_TRUE(has_line(msg,
                       "recipe.yaml: data.train: required key missing (a text file, a folder "
                       "of .txt/.md files, or a glob)"))
      << msg;
  EXPECT_TRUE(has_line(
      msg, "recipe.yaml: output.dir: required key missing (where the trained adapter is written)"))
      << msg;
  EXPECT_TRUE(msg.find("recipe.yaml: training: max_steps (10) and epochs (2) are both set") !=
              std::string::npos)
      << msg;
  for (const auto& l : ls) EXPECT_EQ(l.rfind("recipe.yaml: ", 0), 0u) << l;
}

TEST(RecipeErrors, WrongTypes) {
  auto one = [](const std::string& section) { return error_of(std::string(kMinimal) + section); };
  EXPECT_EQ(one("optimizer:\n  lr: fast\n"),
            "recipe.yaml: optimizer.lr: expected a number, got \"fast\"");
  EXPECT_EQ(one("lora:\n  rank: 2.5\n"), "recipe.yaml: lora.rank: expected an integer, got 2.5");
  EXPECT_EQ(one("lora:\n  rank: [4]\n"), "recipe.yaml: lora.rank: expected an integer, got a list");
  EXPECT_EQ(error_of("model: {path: m}\noutput: {dir: o}\ndata:\n  train: t\n  packing: maybe\n"),
            "recipe.yaml: data.packing: expected true or false, got \"maybe\"");
  EXPECT_EQ(one("optimizer:\n  betas: 0.9\n"),
            "recipe.yaml: optimizer.betas: expected a list [beta1, beta2], got 0.9");
  EXPECT_EQ(one("lora:\n  layers: [1, x]\n"),
            "recipe.yaml: lora.layers: expected an integer, got \"x\"");
  EXPECT_EQ(one("lora:\n  seed: -1\n"), "recipe.yaml: lora.seed: must be >= 0 (got -1)");
  EXPECT_EQ(one("lora: 3\n"), "recipe.yaml: lora: expected a mapping of keys, got 3");
  EXPECT_EQ(error_of("data: {train: t}\noutput: {dir: o}\nmodel:\n  path: {a: 1}\n"),
            "recipe.yaml: model.path: expected a string, got a mapping");
  // Integers written in exponent form are still integers.
  EXPECT_EQ(parse(std::string(kMinimal) + "training:\n  max_steps: 1e3\n").training.max_steps,
            1000);
}

TEST(RecipeParse, FusedLmHeadModes) {
  auto mode = [](const std::string& v) {
    return parse(std::string(kMinimal) + "training:\n  fused_lm_head: " + v + "\n").training;
  };
  EXPECT_EQ(parse(kMinimal).training.fused_lm_head, "auto");
  EXPECT_EQ(parse(kMinimal).training.fused_loss_bytes(), int64_t{1} << 30);
  EXPECT_EQ(mode("true").fused_loss_bytes(), 0);
  EXPECT_EQ(mode("false").fused_loss_bytes(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(mode("auto").fused_lm_head, "auto");
  EXPECT_EQ(error_of(std::string(kMinimal) + "training:\n  fused_lm_head: sometimes\n"),
            "recipe.yaml: training.fused_lm_head: must be one of auto, true, false (got "
            "\"sometimes\")");
  // Round trip through the resolved YAML.
  RecipeConfig c = parse(std::string(kMinimal) + "training:\n  fused_lm_head: true\n");
  RecipeConfig back = hone::parse_recipe(hone::to_yaml(c), "resolved.yaml", "/elsewhere", {});
  EXPECT_EQ(back.training.fused_lm_head, "true");
}

TEST(RecipeErrors, OutOfRange) {
  auto one = [](const std::string& section) { return error_of(std::string(kMinimal) + section); };
  EXPECT_EQ(one("lora:\n  rank: 0\n"), "recipe.yaml: lora.rank: must be > 0 (got 0)");
  EXPECT_EQ(one("optimizer:\n  lr: -0.001\n"),
            "recipe.yaml: optimizer.lr: must be > 0 (got -0.001)");
  EXPECT_EQ(one("optimizer:\n  betas: [1.0, 0.999]\n"),
            "recipe.yaml: optimizer.betas: beta1 must be in [0, 1) (got 1)");
  EXPECT_EQ(one("optimizer:\n  betas: [0.9, -0.1]\n"),
            "recipe.yaml: optimizer.betas: beta2 must be in [0, 1) (got -0.1)");
  EXPECT_EQ(one("lora:\n  dropout: 1.0\n"), "recipe.yaml: lora.dropout: must be in [0, 1) (got 1)");
  EXPECT_EQ(one("training:\n  max_steps: 10\n  epochs: 1\n"),
            "recipe.yaml: training: max_steps (10) and epochs (1) are both set; set only one "
            "(clear one with e.g. training.epochs=null)");
  EXPECT_EQ(one("training:\n  batch_size: 0\n"),
            "recipe.yaml: training.batch_size: must be > 0 (got 0)");
  EXPECT_EQ(one("lora:\n  targets: [q_prj]\n"),
            "recipe.yaml: lora.targets: unknown target \"q_prj\" (did you mean \"q_proj\"?); "
            "expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, or "
            "all-linear alone");
  // A warmup longer than the run is no error: the driver clamps it (test_cli.cpp).
  EXPECT_EQ(one("scheduler:\n  warmup_steps: 50\ntraining:\n  max_steps: 10\n"), "");
  EXPECT_EQ(
      error_of("model: {path: m}\noutput: {dir: o}\ndata:\n  train: t\n  val_fraction: 1.0\n"),
      "recipe.yaml: data.val_fraction: must be in [0, 1) (got 1)");
  EXPECT_EQ(one("scheduler:\n  name: cosin\n"),
            "recipe.yaml: scheduler.name: must be one of constant, linear, cosine (got \"cosin\") "
            "(did you mean \"cosine\"?)");
}

TEST(RecipeOverrides, ScalarsAndLists) {
  RecipeConfig c = parse(kMinimal, {"training.max_steps=10", "optimizer.lr=1e-3",
                                    "lora.targets=[q_proj,v_proj,o_proj]", "lora.layers=[1,3]",
                                    "data.packing=false", "lora.rank=4"});
  EXPECT_EQ(c.training.max_steps, 10);
  EXPECT_FALSE(c.training.epochs.has_value());
  EXPECT_EQ(c.optimizer.lr, 1e-3);
  EXPECT_EQ(c.lora.targets, (std::vector<std::string>{"q_proj", "v_proj", "o_proj"}));
  EXPECT_EQ(c.lora.layers, (std::vector<int>{1, 3}));
  EXPECT_FALSE(c.data.packing);
  EXPECT_EQ(c.lora.rank, 4);
}

TEST(RecipeOverrides, ReplaceTheFileValueAndItsProblem) {
  // A bad value in the file is fixed by an override of the same key.
  RecipeConfig c = parse(std::string(kMinimal) + "lora:\n  rank: 0\ntraining:\n  epochs: 2\n",
                         {"lora.rank=8", "training.epochs=null", "training.max_steps=5"});
  EXPECT_EQ(c.lora.rank, 8);
  EXPECT_EQ(c.training.max_steps, 5);
  EXPECT_FALSE(c.training.epochs.has_value());
}

TEST(RecipeOverrides, ProblemsNameTheOverride) {
  std::string msg = error_of(kMinimal, {"training.max_stpes=10", "optimizer.lr=fast", "lora.rank=0",
                                        "traning.seed=1", "lora.rank", "lora=[1"});
  auto ls = lines(msg);
  EXPECT_EQ(ls.size(), 6u) << msg;
  EXPECT_TRUE(
      has_line(msg, "override training.max_stpes=10: unknown key (did you mean \"max_steps\"?)"))
      << msg;
  EXPECT_TRUE(has_line(msg, "override optimizer.lr=fast: expected a number, got \"fast\"")) << msg;
  EXPECT_TRUE(has_line(msg, "override lora.rank=0: must be > 0 (got 0)")) << msg;
  EXPECT_TRUE(has_line(msg,
                       "override traning.seed=1: unknown section \"traning\" (did you mean "
                       "\"training\"?)"))
      << msg;
  EXPECT_TRUE(has_line(msg,
                       "override lora.rank: expected section.key=value, e.g. "
                       "training.max_steps=10"))
      << msg;
}

TEST(RecipeOverrides, MalformedValue) {
  std::string msg = error_of(kMinimal, {"lora.targets=[q_proj"});
  EXPECT_EQ(msg.rfind("override lora.targets=[q_proj: malformed value", 0), 0u) << msg;
}

TEST(RecipePaths, RelativeToTheRecipeFolderOverridesToTheCurrentDir) {
  hone::test::TempDir tmp;
  fs::create_directories(tmp.path() / "configs");
  std::string recipe = tmp.file("configs/r.yaml");
  hone::test::write_bytes(recipe, R"(
model:
  path: ../models/./base.bin
  tokenizer: tok.bin
data:
  train: /abs/data/
output:
  dir: runs/one
)");
  RecipeConfig c = hone::load_recipe(recipe, {"data.val=val.txt"});
  fs::path base = fs::absolute(tmp.path());
  EXPECT_EQ(c.model.path, (base / "models/base.bin").string());
  EXPECT_EQ(c.model.tokenizer, (base / "configs/tok.bin").string());
  EXPECT_EQ(c.data.train, "/abs/data");
  EXPECT_EQ(c.output.dir, (base / "configs/runs/one").string());
  EXPECT_EQ(c.checkpoint.dir, (base / "configs/runs/one/checkpoints").string());
  EXPECT_EQ(c.data.val, (fs::current_path() / "val.txt").string());
  EXPECT_EQ(c.source, recipe);
}

TEST(RecipeYaml, RoundTrip) {
  RecipeConfig c = parse(std::string(kMinimal) + R"(
lora:
  rank: 16
  alpha: 32
  dropout: 0.1
  targets: [q_proj, down_proj]
  layers: [0, 3]
  rslora: true
  dora: true
training:
  max_steps: 300
  grad_clip: 0.3
optimizer:
  lr: 3e-3
  betas: [0.9, 0.95]
  weight_decay: 0.1
scheduler:
  warmup_steps: 30
  min_lr: 3e-5
)");
  std::string y = hone::to_yaml(c);
  RecipeConfig back = hone::parse_recipe(y, "resolved.yaml", "/elsewhere", {});
  EXPECT_TRUE(back == c) << y;
  EXPECT_EQ(hone::to_yaml(back), y);
  EXPECT_EQ(back.optimizer.lr, 3e-3);
  EXPECT_EQ(back.lora.dropout, 0.1);
  EXPECT_TRUE(back.lora.dora);
  EXPECT_EQ(back.training.grad_clip, 0.3);
  EXPECT_NE(y.find("  max_steps: 300\n"), std::string::npos) << y;
  EXPECT_NE(y.find("  epochs: null\n"), std::string::npos) << y;

  // The defaults-only recipe and awkward strings round-trip too.
  RecipeConfig d = parse(kMinimal, {"model.path=\"/we ird/\\\"q\\\": #x\""});
  EXPECT_EQ(d.model.path, "/we ird/\"q\": #x");
  RecipeConfig d2 = hone::parse_recipe(hone::to_yaml(d), "resolved.yaml", "/", {});
  EXPECT_TRUE(d2 == d) << hone::to_yaml(d);
  // Strings YAML would read as another type stay strings.
  RecipeConfig e = parse(kMinimal, {"model.tokenizer=\"yes\"", "data.val=\"1e3\""});
  RecipeConfig e2 = hone::parse_recipe(hone::to_yaml(e), "resolved.yaml", "/base", {});
  EXPECT_EQ(e2.model.tokenizer, (fs::current_path() / "yes").string());
  EXPECT_TRUE(e2 == e) << hone::to_yaml(e);
  // == sees a difference in any section.
  d2.scheduler.min_lr = 1e-9;
  EXPECT_FALSE(d2 == d);
  d2 = d;
  d2.lora.dora = true;
  EXPECT_FALSE(d2 == d);
}

TEST(RecipeErrors, NotAMapping) {
  EXPECT_EQ(error_of("- a\n- b\n"),
            "recipe.yaml: expected a mapping of sections (model:, lora:, data:, ...), got a list");
}

TEST(RecipeErrors, MalformedYamlNamesTheLine) {
  std::string msg = error_of("model:\n  path: a\n  dtype: [f32\ndata:\n  train: x\n");
  EXPECT_EQ(msg.rfind("recipe.yaml:", 0), 0u) << msg;
  EXPECT_NE(msg.find("malformed YAML"), std::string::npos) << msg;
  // yaml-cpp reports where the flow sequence broke: line 3 or 4 (1-based), with a column.
  EXPECT_TRUE(msg.rfind("recipe.yaml:3:", 0) == 0 || msg.rfind("recipe.yaml:4:", 0) == 0) << msg;

  msg = error_of("model:\n  path: a\n bad indent: 1\n");
  EXPECT_EQ(msg.rfind("recipe.yaml:3:", 0), 0u) << msg;
}

TEST(RecipeErrors, MissingFileNamed) {
  hone::test::TempDir tmp;
  std::string path = tmp.file("nope.yaml");
  try {
    hone::load_recipe(path);
    FAIL() << "no error";
  } catch (const hone::Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ": cannot open recipe", 0), 0u) << e.what();
  }
  try {
    hone::load_recipe(tmp.path().string());
    FAIL() << "no error";
  } catch (const hone::Error& e) {
    EXPECT_NE(std::string(e.what()).find("is a folder"), std::string::npos) << e.what();
  }
}

TEST(RecipePaths, CheckNamesEveryMissingInput) {
  hone::test::TempDir tmp;
  hone::test::write_bytes(tmp.file("model.bin"), "x");
  fs::create_directories(tmp.path() / "corpus");
  hone::test::write_bytes(tmp.file("corpus/a.txt"), "hello");
  std::string base = tmp.path().string();
  RecipeConfig ok = hone::parse_recipe(
      "model: {path: model.bin}\ndata: {train: corpus/*.txt}\noutput: {dir: out}\n", "r.yaml", base,
      {});
  EXPECT_NO_THROW(hone::check_recipe_paths(ok));
  RecipeConfig bad = hone::parse_recipe(
      "model: {path: missing.bin, tokenizer: tok.bin}\ndata: {train: corpus/*.md, val: v.txt}\n"
      "output: {dir: out}\n",
      "r.yaml", base, {});
  try {
    hone::check_recipe_paths(bad);
    FAIL() << "no error";
  } catch (const hone::Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(lines(msg).size(), 4u) << msg;
    EXPECT_TRUE(
        has_line(msg, "r.yaml: model.path: no such file or folder: " + base + "/missing.bin"))
        << msg;
    EXPECT_TRUE(has_line(msg, "r.yaml: data.train: no file matches " + base + "/corpus/*.md"))
        << msg;
  }
}

TEST(RecipeConfigs, ShippedConfigsParse) {
  fs::path dir = repo_dir() / "recipes" / "configs";
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  int n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    RecipeConfig c;
    ASSERT_NO_THROW(c = hone::load_recipe(entry.path().string()));
    // The model files are shipped in the repository.
    EXPECT_TRUE(fs::exists(c.model.path)) << c.model.path;
    if (!c.model.tokenizer.empty()) {
      EXPECT_TRUE(fs::exists(c.model.tokenizer)) << c.model.tokenizer;
    }
    EXPECT_TRUE(hone::parse_recipe(hone::to_yaml(c), "resolved.yaml", "/", {}) == c);
    ++n;
  }
  EXPECT_GE(n, 1);
}

TEST(RecipeConfigs, Stories260kShakespeareValues) {
  RecipeConfig c =
      hone::load_recipe((repo_dir() / "recipes/configs/stories260k-shakespeare.yaml").string());
  EXPECT_EQ(c.model.path, (repo_dir() / "data/samples/stories260K/stories260K.bin").string());
  EXPECT_EQ(c.model.tokenizer, (repo_dir() / "data/samples/stories260K/tok512.bin").string());
  EXPECT_EQ(c.data.train, (repo_dir() / "data/samples/tinyshakespeare/train.txt").string());
  EXPECT_EQ(c.lora.rank, 16);
  EXPECT_EQ(c.lora.alpha, 32.0);
  EXPECT_EQ(c.lora.targets.size(), 7u);
  EXPECT_EQ(c.data.seq_len, 256);
  EXPECT_EQ(c.training.batch_size, 8);
  EXPECT_EQ(c.training.max_steps, 300);
  EXPECT_EQ(c.optimizer.name, "adamw");
  EXPECT_EQ(c.optimizer.lr, 3e-3);
  EXPECT_EQ(c.scheduler.name, "cosine");
  EXPECT_GT(c.scheduler.warmup_steps, 0);
  // The driver's override path works on the shipped recipe.
  RecipeConfig o =
      hone::load_recipe((repo_dir() / "recipes/configs/stories260k-shakespeare.yaml").string(),
                        {"training.max_steps=10", "optimizer.lr=1e-3"});
  EXPECT_EQ(o.training.max_steps, 10);
  EXPECT_EQ(o.optimizer.lr, 1e-3);
}

TEST(RecipeData, InstructionKeysDefaultsAndValues) {
  RecipeConfig d = parse(kMinimal);
  EXPECT_TRUE(d.data.fields.empty());
  EXPECT_EQ(d.data.train_on, "completions");
  EXPECT_EQ(d.data.chat_template, "");
  EXPECT_EQ(d.data.on_bad_line, "error");

  RecipeConfig c = parse(R"(
model: {path: m.bin}
data:
  train: qa.jsonl
  format: completion
  fields: {prompt: question, completion: answer}
  train_on: all
  on_bad_line: skip
  packing: false
output: {dir: out}
)");
  EXPECT_EQ(c.data.format, "completion");
  EXPECT_EQ(c.data.fields,
            (std::map<std::string, std::string>{{"prompt", "question"}, {"completion", "answer"}}));
  EXPECT_EQ(c.data.train_on, "all");
  EXPECT_EQ(c.data.on_bad_line, "skip");
  EXPECT_FALSE(c.data.packing);

  RecipeConfig chat = parse(kMinimal, {"data.format=chat", "data.chat_template=chatml",
                                       "data.fields={messages: conversations}"});
  EXPECT_EQ(chat.data.chat_template, "chatml");
  EXPECT_EQ(chat.data.fields.at("messages"), "conversations");
  // null clears the mapping.
  EXPECT_TRUE(parse(kMinimal, {"data.format=chat", "data.fields={messages: m}", "data.fields=null"})
                  .data.fields.empty());
}

TEST(RecipeData, InstructionKeysErrors) {
  std::string msg = error_of(kMinimal, {"data.format=alpacca"});
  EXPECT_TRUE(has_line(msg,
                       "override data.format=alpacca: must be one of text, completion, alpaca, "
                       "chat (got \"alpacca\") (did you mean \"alpaca\"?)"))
      << msg;
  msg = error_of(kMinimal, {"data.train_on=completion"});
  EXPECT_TRUE(has_line(msg,
                       "override data.train_on=completion: must be one of completions, all (got "
                       "\"completion\") (did you mean \"completions\"?)"))
      << msg;
  msg = error_of(kMinimal, {"data.on_bad_line=ignore"});
  EXPECT_TRUE(has_line(
      msg, "override data.on_bad_line=ignore: must be one of error, skip (got \"ignore\")"))
      << msg;
  msg = error_of(kMinimal, {"data.format=chat", "data.chat_template=llama"});
  EXPECT_TRUE(has_line(msg,
                       "override data.chat_template=llama: must be one of llama3, chatml, llama2, "
                       "mistral (got \"llama\") (did you mean \"llama3\"?)"))
      << msg;
  msg = error_of(kMinimal, {"data.format=alpaca", "data.chat_template=llama3"});
  EXPECT_TRUE(has_line(msg,
                       "override data.chat_template=llama3: only used with format chat (format "
                       "is alpaca)"))
      << msg;

  // Fields: names checked against the format, in the file's error style.
  msg = error_of(R"(
model: {path: m.bin}
data:
  train: a.jsonl
  format: alpaca
  fields: {instrution: q, output: ""}
output: {dir: out}
)");
  EXPECT_TRUE(has_line(msg,
                       "recipe.yaml: data.fields: unknown field \"instrution\" for format alpaca "
                       "(did you mean \"instruction\"?); expected instruction, input, output"))
      << msg;
  EXPECT_TRUE(has_line(msg, "recipe.yaml: data.fields: field \"output\" maps to an empty key"))
      << msg;
  msg = error_of(kMinimal, {"data.fields={prompt: q}"});
  EXPECT_TRUE(has_line(msg,
                       "override data.fields={prompt: q}: only completion, alpaca and chat data "
                       "have fields (format is text)"))
      << msg;
  msg = error_of(kMinimal, {"data.format=completion", "data.fields=[a, b]"});
  EXPECT_TRUE(has_line(msg,
                       "override data.fields=[a, b]: expected a mapping of field names, e.g. "
                       "{prompt: question}, got a list"))
      << msg;
  msg = error_of(kMinimal, {"data.formt=chat"});
  EXPECT_TRUE(has_line(msg, "override data.formt=chat: unknown key (did you mean \"format\"?)"))
      << msg;
}

TEST(RecipeData, InstructionKeysRoundTrip) {
  RecipeConfig c =
      parse(kMinimal, {"data.format=chat", "data.chat_template=llama3",
                       "data.fields={messages: conv, content: \"text body\"}", "data.train_on=all",
                       "data.on_bad_line=skip", "data.packing=false"});
  std::string y = hone::to_yaml(c);
  EXPECT_NE(y.find("  fields: {content: \"text body\", messages: conv}\n"), std::string::npos) << y;
  RecipeConfig back = hone::parse_recipe(y, "resolved.yaml", "/elsewhere", {});
  EXPECT_TRUE(back == c) << y;
  EXPECT_EQ(hone::to_yaml(back), y);
  RecipeConfig d = parse(kMinimal);
  EXPECT_NE(hone::to_yaml(d).find("  fields: {}\n"), std::string::npos);
  EXPECT_TRUE(hone::parse_recipe(hone::to_yaml(d), "resolved.yaml", "/", {}) == d);
  back.data.fields["role"] = "from";
  EXPECT_FALSE(back == c);
}

TEST(RecipeConfigs, Gsm8kStories260kValues) {
  RecipeConfig c =
      hone::load_recipe((repo_dir() / "recipes/configs/gsm8k-stories260k.yaml").string());
  EXPECT_EQ(c.data.format, "alpaca");
  EXPECT_EQ(c.data.train_on, "completions");
  EXPECT_EQ(c.data.train,
            (repo_dir().parent_path() / "shared/corpora/gsm8k/train_alpaca.jsonl").string());
  EXPECT_GT(c.data.val_fraction, 0.0);
  EXPECT_EQ(c.training.max_steps, 200);
}
