// `hone export` to GGUF at its edges: gguf-lora's --dtype and adapter weight, tokenizer configs
// without a chat template, vocabularies larger than the model, `hone inspect` on quantized
// GGUFs, and Llama-3 rope scaling (rope_freqs.weight) read back.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "common.h"
#include "gguf_tokenizer_helpers.h"
#include "hone_process.h"
#include "lora/peft.h"
#include "model/io/gguf.h"
#include "model/io/gguf_model.h"
#include "model/io/hf_export.h"
#include "model/io/model_files.h"
#include "model/io/safetensors.h"
#include "model/random_weights.h"
#include "tmpdir.h"
#include "train_helpers.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

std::string stories_bin() {
  return test::repo_file("data/samples/stories260K/stories260K.bin");
}

// A PEFT adapter on stories260K with random A and B (a fresh adapter's B is 0).
std::string random_stories_adapter(const std::string& dir) {
  ModelFiles f = load_model_files(stories_bin());
  Transformer m(f.config, f.tensors);
  LoraConfig c;
  c.rank = 4;
  c.alpha = 8;
  c.targets = {"q_proj", "v_proj", "down_proj"};
  LoraAdapters ad(m, c);
  Rng r(3);
  float* v = ad.values().data<float>();
  for (int64_t i = 0; i < ad.values().numel(); ++i) v[i] = static_cast<float>(r.normal() * 0.1);
  save_peft_adapter(dir, ad, stories_bin());
  return dir;
}

test::Outcome export_lora(const std::string& adapter, const std::string& out,
                          const std::string& extra = "") {
  return test::run_hone("export --format gguf-lora --model " + stories_bin() + " --adapter " +
                        adapter + " --out " + out + " " + extra);
}

}  // namespace

TEST(GgufLoraExport, HonoursDtypeAndAdapterWeight) {
  test::TempDir dir;
  const std::string adapter = random_stories_adapter(dir.file("adapter"));
  ASSERT_EQ(export_lora(adapter, dir.file("f32.gguf")).status, 0);
  test::Outcome half = export_lora(adapter + ":0.5", dir.file("half.gguf"));
  ASSERT_EQ(half.status, 0) << half.out;
  test::Outcome f16 = export_lora(adapter, dir.file("f16.gguf"), "--dtype f16");
  ASSERT_EQ(f16.status, 0) << f16.out;
  test::Outcome bf16 = export_lora(adapter, dir.file("bf16.gguf"), "--dtype bf16");
  ASSERT_EQ(bf16.status, 0) << bf16.out;

  GgufFile full = read_gguf(dir.file("f32.gguf")), h = read_gguf(dir.file("half.gguf"));
  GgufFile g16 = read_gguf(dir.file("f16.gguf")), gb16 = read_gguf(dir.file("bf16.gguf"));
  ASSERT_EQ(full.tensors.size(), 2u * 3 * 5);  // 5 layers, 3 targets, A and B
  for (const GgufTensorInfo& t : full.tensors) {
    ASSERT_EQ(t.type, GgmlType::F32) << t.name;
    const Tensor want = gguf_tensor(full, t);
    const bool is_b = t.name.ends_with(".lora_b");
    // The weight scales B (×0.5 is exact in f32) and leaves A alone.
    const Tensor got = gguf_tensor(h, *h.tensor(t.name));
    for (int64_t i = 0; i < want.numel(); ++i)
      ASSERT_EQ(got.item(i), is_b ? 0.5 * want.item(i) : want.item(i)) << t.name << " " << i;
    // f16 / bf16 hold the f32 values rounded once.
    for (const auto& [file, type, tol] : {std::tuple{&g16, GgmlType::F16, 1.0 / 1024},
                                          std::tuple{&gb16, GgmlType::BF16, 1.0 / 128}}) {
      const GgufTensorInfo* ti = file->tensor(t.name);
      ASSERT_TRUE(ti) << t.name;
      EXPECT_EQ(ti->type, type) << t.name;
      const Tensor r = gguf_tensor(*file, *ti).to(DType::F32);
      for (int64_t i = 0; i < want.numel(); ++i)
        ASSERT_LE(std::abs(r.item(i) - want.item(i)), tol * std::abs(want.item(i)) + 1e-7)
            << t.name << " " << i;
    }
  }
}

TEST(GgufLoraExport, RefusesABadDtypeAndWritesNothing) {
  test::TempDir dir;
  const std::string adapter = random_stories_adapter(dir.file("adapter"));
  for (const std::string dtype : {"bogus", "q8_0", "q4_0"}) {
    const std::string out = dir.file(dtype + ".gguf");
    test::Outcome o = export_lora(adapter, out, "--dtype " + dtype);
    EXPECT_EQ(o.status, 1) << dtype << ": " << o.out;
    EXPECT_NE(o.out.find("--dtype"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find(dtype), std::string::npos) << o.out;
    EXPECT_FALSE(fs::exists(out)) << dtype;
  }
}

// A tokenizer_config.json without "chat_template" (a base model's) exports like an absent one:
// no tokenizer.chat_template in the GGUF. The model is a random one with Llama 3's vocabulary.
TEST(GgufExportTokenizer, ConfigWithoutChatTemplateWritesNone) {
  HONE_REQUIRE_SHARED(llama3, "tokenizers/llama3");
  test::TempDir dir;
  const ModelConfig cfg = test::tiny_vocab_config("llama", 128256);
  const std::string model = dir.file("model");
  fs::create_directories(model);
  std::ofstream(model + "/config.json") << hf_config_json(cfg, DType::F32);
  write_safetensors(model + "/model.safetensors", random_weights(cfg, 1));
  fs::copy_file(llama3 + "/tokenizer.json", model + "/tokenizer.json");
  std::ofstream(model + "/tokenizer_config.json")
      << R"({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"})";
  test::Outcome o =
      test::run_hone("export --format gguf --model " + model + " --out " + dir.file("m.gguf"));
  ASSERT_EQ(o.status, 0) << o.out;
  GgufFile f = read_gguf(dir.file("m.gguf"));
  EXPECT_EQ(f.find("tokenizer.chat_template"), nullptr);
  EXPECT_EQ(f.find("tokenizer.ggml.tokens")->items.size(), 128256u);
  // This tokenizer.json's post-processor is ByteLevel (no template) and the config has no
  // add_bos_token, so HF's encode adds no BOS ("Hi" -> [13347]); the file says so, where llama.cpp
  // would otherwise guess one ([128000, 13347]).
  ASSERT_NE(f.find("tokenizer.ggml.add_bos_token"), nullptr);
  EXPECT_FALSE(f.get_bool("tokenizer.ggml.add_bos_token", true));
  ASSERT_NE(f.find("tokenizer.ggml.add_eos_token"), nullptr);
  EXPECT_FALSE(f.get_bool("tokenizer.ggml.add_eos_token", true));
  // With the original tokenizer_config.json the template is carried over.
  fs::copy_file(llama3 + "/tokenizer_config.json", model + "/tokenizer_config.json",
                fs::copy_options::overwrite_existing);
  o = test::run_hone("export --format gguf --model " + model + " --out " + dir.file("t.gguf"));
  ASSERT_EQ(o.status, 0) << o.out;
  EXPECT_NE(read_gguf(dir.file("t.gguf")).get_string("tokenizer.chat_template", ""), "");
  // A config asking for BOS (as HF's encode then adds it) gives add_bos_token true.
  std::ofstream(model + "/tokenizer_config.json")
      << R"({"bos_token": "<|begin_of_text|>", "add_bos_token": true})";
  o = test::run_hone("export --format gguf --model " + model + " --out " + dir.file("b.gguf"));
  ASSERT_EQ(o.status, 0) << o.out;
  EXPECT_TRUE(read_gguf(dir.file("b.gguf")).get_bool("tokenizer.ggml.add_bos_token", false));
}

// A vocabulary longer than the embedding (llama.cpp refuses the file) is refused at export with
// both sizes and both files named, and nothing is written.
TEST(GgufExportTokenizer, VocabularyLargerThanTheEmbeddingIsRefused) {
  HONE_REQUIRE_SHARED(llama2, "tokenizers/llama2/tokenizer.bin");
  HONE_REQUIRE_SHARED(llama3, "tokenizers/llama3");
  HONE_REQUIRE_SHARED(tiny, "fixtures/models/tiny-llama3");
  test::TempDir dir;
  struct Case {
    std::string model, tokenizer, tokens, rows;
  };
  for (const Case& c :
       {Case{stories_bin(), llama2, "32000", "512"}, Case{tiny, llama3, "128256", "256"}}) {
    const std::string out = dir.file(c.tokens + ".gguf");
    test::Outcome o = test::run_hone("export --format gguf --model " + c.model + " --tokenizer " +
                                     c.tokenizer + " --out " + out);
    EXPECT_EQ(o.status, 1) << o.out;
    for (const std::string& s : {c.model, c.tokenizer, c.tokens, c.rows})
      EXPECT_NE(o.out.find(s), std::string::npos) << s << " not in: " << o.out;
    EXPECT_FALSE(fs::exists(out)) << c.tokenizer;
  }
  // The model's own vocabulary still fits.
  test::Outcome ok = test::run_hone("export --format gguf --model " + stories_bin() + " --out " +
                                    dir.file("s.gguf"));
  EXPECT_EQ(ok.status, 0) << ok.out;
}

// `hone inspect` on a quantized GGUF lists every tensor with the GGML type stored in the file
// (the loader dequantizes Q8_0 / Q4_0, which once made them show as F32).
TEST(InspectGguf, ListsQuantizedTensorsWithTheirStoredType) {
  test::TempDir dir;
  for (const std::string dtype : {"q8_0", "q4_0"}) {
    const std::string gguf = dir.file(dtype + ".gguf");
    test::Outcome e = test::run_hone("export --format gguf --model " + stories_bin() + " --dtype " +
                                     dtype + " --out " + gguf);
    ASSERT_EQ(e.status, 0) << e.out;
    const GgufFile f = read_gguf(gguf);
    std::map<std::string, int> counts;
    for (const GgufTensorInfo& t : f.tensors) ++counts[ggml_type_name(t.type)];
    const std::string quant = dtype == "q8_0" ? "Q8_0" : "Q4_0";
    ASSERT_GT(counts[quant], 0) << dtype;  // the export did quantize
    std::string want = "dtypes:";
    for (const auto& [type, n] : counts) want += " " + type + " (" + std::to_string(n) + ")";
    test::Outcome r = test::run_hone("inspect " + gguf);
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("tensors: " + std::to_string(f.tensors.size()) + "\n"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find(want + "\n"), std::string::npos) << want << "\n" << r.out;
    // Layer 0 and the embedding carry the file's type, tensor by tensor.
    for (const GgufTensorInfo& t : f.tensors) {
      const std::string hf = hf_name_from_gguf(t.name);
      if (hf.rfind("model.layers.", 0) == 0 && hf.rfind("model.layers.0.", 0) != 0) continue;
      const std::string line =
          "  " + hf + "  " + shape_str(t.shape()) + "  " + ggml_type_name(t.type) + "\n";
      EXPECT_NE(r.out.find(line), std::string::npos) << line << r.out;
    }
  }
}

namespace {

// Mean next-token cross-entropy of `ids` under the model.
double loss_of(const ModelFiles& f, const std::vector<int32_t>& ids) {
  Transformer m(f.config, f.tensors);
  const Tensor logits = m.forward(nullptr, ids, 1, static_cast<int64_t>(ids.size())).value();
  const int64_t v = logits.dim(1);
  double sum = 0;
  for (size_t t = 0; t + 1 < ids.size(); ++t) {
    double mx = -1e300, z = 0;
    for (int64_t j = 0; j < v; ++j) mx = std::max(mx, logits.item(t * v + j));
    for (int64_t j = 0; j < v; ++j) z += std::exp(logits.item(t * v + j) - mx);
    sum += mx + std::log(z) - logits.item(t * v + ids[t + 1]);
  }
  return sum / static_cast<double>(ids.size() - 1);
}

// The GGUF at `path` rewritten with the metadata `keep` accepts (tensors as stored).
void rewrite_gguf(const std::string& from, const std::string& to,
                  const std::function<bool(const std::string&)>& keep,
                  const std::function<void(GgufTensorOut&)>& edit = {}) {
  GgufFile f = read_gguf(from);
  GgufMetadata md;
  for (const auto& kv : f.metadata)
    if (keep(kv.first)) md.push_back(kv);
  std::vector<GgufTensorOut> out;
  for (const GgufTensorInfo& t : f.tensors) {
    out.push_back({t.name, gguf_tensor(f, t).to(DType::F32), GgmlType::F32});
    if (edit) edit(out.back());
  }
  write_gguf(to, md, out);
}

}  // namespace

// A Llama-3 model with rope scaling written by hone (rope_freqs.weight, as llama.cpp wants it)
// reads back with the same scaling and the same loss, past the original context where it acts.
TEST(GgufRopeScaling, HonesOwnLlama3GgufReadsBackWithTheSameLoss) {
  HONE_REQUIRE_SHARED(dir, "fixtures/models/tiny-llama3");
  test::TempDir tmp;
  const ModelFiles hf = load_model_files(dir);
  ASSERT_EQ(hf.config.rope_scaling.type, "llama3");
  write_gguf_model(tmp.file("m.gguf"), hf.config, hf.tensors, GgmlType::F32, nullptr);
  ASSERT_NE(read_gguf(tmp.file("m.gguf")).tensor("rope_freqs.weight"), nullptr);
  const ModelFiles g = read_gguf_model(tmp.file("m.gguf"));
  const RopeScaling& a = hf.config.rope_scaling;
  const RopeScaling& b = g.config.rope_scaling;
  EXPECT_EQ(b.type, "llama3");
  EXPECT_EQ(b.factor, a.factor);
  EXPECT_EQ(b.low_freq_factor, a.low_freq_factor);
  EXPECT_EQ(b.high_freq_factor, a.high_freq_factor);
  EXPECT_EQ(b.original_max_position_embeddings, a.original_max_position_embeddings);
  std::vector<int32_t> ids;
  for (int i = 0; i < 120; ++i) ids.push_back((i * 37 + 11) % 256);  // beyond the original 64
  EXPECT_EQ(loss_of(g, ids), loss_of(hf, ids));
}

// A GGUF without hone's keys (as llama.cpp's converter writes Llama 3.1): its rope_freqs is
// recognised as the Llama 3.1 scaling; factors that match no scaling are refused by name.
TEST(GgufRopeScaling, LlamaCppStyleFactorsAreRecognisedOrRefused) {
  HONE_REQUIRE_SHARED(dir, "fixtures/models/tiny-llama3");
  test::TempDir tmp;
  ModelFiles hf = load_model_files(dir);
  hf.config.rope_scaling.original_max_position_embeddings = 8192;  // Llama 3.1's settings
  hf.config.rope_theta = 10000.0;  // wavelengths across all three bands for head size 16
  write_gguf_model(tmp.file("m.gguf"), hf.config, hf.tensors, GgmlType::F32, nullptr);
  const auto not_hone = [](const std::string& k) { return k.rfind("hone.", 0) != 0; };
  rewrite_gguf(tmp.file("m.gguf"), tmp.file("plain.gguf"), not_hone);
  const ModelFiles g = read_gguf_model(tmp.file("plain.gguf"));
  EXPECT_EQ(g.config.rope_scaling.type, "llama3");
  EXPECT_EQ(g.config.rope_scaling.factor, 8.0);
  EXPECT_EQ(g.config.rope_scaling.original_max_position_embeddings, 8192);

  rewrite_gguf(tmp.file("m.gguf"), tmp.file("bad.gguf"), not_hone, [](GgufTensorOut& t) {
    if (t.name == "rope_freqs.weight") t.values.data<float>()[1] *= 1.5f;
  });
  try {
    read_gguf_model(tmp.file("bad.gguf"));
    ADD_FAILURE() << "accepted rope_freqs.weight that matches no scaling";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(tmp.file("bad.gguf") + ": tensor rope_freqs.weight"),
              std::string::npos)
        << e.what();
  }
  // With hone's keys, the tensor must be the scaling they describe.
  rewrite_gguf(
      tmp.file("m.gguf"), tmp.file("bad2.gguf"), [](const std::string&) { return true; },
      [](GgufTensorOut& t) {
        if (t.name == "rope_freqs.weight") t.values.data<float>()[1] *= 1.5f;
      });
  const test::Outcome o = test::run_hone("inspect " + tmp.file("bad2.gguf"));
  EXPECT_EQ(o.status, 1) << o.out;
  EXPECT_NE(o.out.find("rope_freqs.weight"), std::string::npos) << o.out;
}
