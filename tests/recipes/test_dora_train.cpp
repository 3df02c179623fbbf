// DoRA end to end through the `hone` binary and the drivers: `lora.dora=true` trains (dropout on)
// and writes a PEFT DoRA adapter, resumes bitwise from a checkpoint, refuses to resume as plain
// LoRA, merges into HF and GGUF models that give the adapted model's logits, and gguf-lora,
// unmerge and combine refuse it with their reasons.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lora/peft.h"
#include "model/io/model_files.h"
#include "model/io/safetensors.h"
#include "recipes/merge_export.h"
#include "recipes/run_checkpoint.h"
#include "tmpdir.h"
#include "train_helpers.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

constexpr int kSteps = 8;
const std::string kDora = " lora.dora=true checkpoint.keep=0";

Tensor logits_of(const std::string& model_path, const std::string& adapter = "") {
  ModelFiles f = load_model_files(model_path);
  Transformer m(f.config, f.tensors);
  std::unique_ptr<LoraAdapters> ad;
  if (!adapter.empty()) ad = load_peft_adapter(adapter, m);
  const std::vector<int32_t> ids = {1, 5, 9, 3, 7, 2, 11, 4, 8, 6, 10, 12};
  return m.forward(nullptr, ids, 1, static_cast<int64_t>(ids.size())).value().clone();
}

double rel_diff(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    num = std::max(num, std::abs(a.item(i) - b.item(i)));
    den = std::max(den, std::abs(b.item(i)));
  }
  return num / den;
}

TEST(DoraTrain, TrainsResumesExactlyAndMergesIntoHfAndGguf) {
  test::TempDir dir;
  const std::string out = dir.file("run");
  const std::string recipe = test::write_small_recipe(dir.file("r.yaml"), out, kSteps);
  test::Outcome r = test::run_hone("-q train " + recipe + kDora);
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string adapter = test::slurp(out + "/adapter_model.safetensors");
  const nlohmann::json cfg = nlohmann::json::parse(std::ifstream(out + "/adapter_config.json"));
  EXPECT_EQ(cfg["use_dora"], true);
  {
    SafetensorsFile f = read_safetensors(out + "/adapter_model.safetensors");
    const Tensor& m =
        f.tensors.at("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector");
    EXPECT_EQ(m.shape(), (Shape{64}));
  }

  // Back to the checkpoint after step 4, as a run killed there leaves it: the resumed run ends
  // with the same adapter, byte for byte (m's AdamW state is in the checkpoint).
  for (int s = 5; s <= kSteps; ++s) fs::remove(checkpoint_path(out + "/checkpoints", s));
  fs::remove(out + "/adapter_model.safetensors");
  r = test::run_hone("-q train " + recipe + kDora + " --resume");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(test::slurp(out + "/adapter_model.safetensors") == adapter);
  // A DoRA checkpoint does not resume as plain LoRA.
  r = test::run_hone("-q train " + recipe + " checkpoint.keep=0 --resume");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("dora"), std::string::npos) << r.out;

  const std::string base = test::repo_file("data/samples/stories260K/stories260K.bin");
  const Tensor want = logits_of(base, out);
  EXPECT_GT(rel_diff(logits_of(base), want), 1e-4);  // the adapter changes the model

  MergeOptions mo;
  mo.base = base;
  mo.adapters = {out};
  mo.out = dir.file("merged");
  mo.dtype = "f32";
  run_merge(mo);
  EXPECT_LE(rel_diff(logits_of(mo.out), want), 1e-5);

  ExportOptions eo;
  eo.model = base;
  eo.adapter = out;
  eo.out = dir.file("merged.gguf");
  eo.format = "gguf";
  eo.tokenizer = test::repo_file("data/samples/stories260K/tok512.bin");
  run_export(eo);
  EXPECT_LE(rel_diff(logits_of(eo.out), want), 1e-5);

  eo.format = "gguf-lora";
  eo.out = dir.file("lora.gguf");
  r = test::run_hone("export --format gguf-lora --model " + base + " --adapter " + out + " --out " +
                     eo.out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("cannot express DoRA"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--format gguf"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(eo.out));

  r = test::run_hone("unmerge --base " + mo.out + " --adapter " + out + " --out " +
                     dir.file("unmerged"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("cannot unmerge a DoRA adapter"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir.file("unmerged")));

  r = test::run_hone("combine --method linear --adapter " + out + " --adapter " + out + " --out " +
                     dir.file("combined"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("DoRA"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir.file("combined")));
}

}  // namespace
