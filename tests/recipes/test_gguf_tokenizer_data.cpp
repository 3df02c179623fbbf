// A GGUF model with its tokenizer embedded and nothing beside it serves instruction (JSONL) data
// too: its vocabulary tokenizes the records, and chat data uses its tokenizer.chat_template (or
// says that it has none). These recipes used to be refused with "no tokenizer found beside".
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "autograd/error.h"
#include "hone_process.h"
#include "model/io/gguf_model.h"
#include "model/io/model_files.h"
#include "recipes/data_inspect.h"
#include "recipes/model_tokenizer.h"
#include "recipes/recipe.h"
#include "recipes/run_setup.h"
#include "tmpdir.h"

namespace hone {
namespace {

const std::string kSamples = std::string(HONE_SOURCE_DIR) + "/data/samples/stories260K/";

// stories260K as a GGUF carrying its tok512 vocabulary and `chat_template` ("" for none), alone
// in `dir`.
std::string write_gguf(const test::TempDir& dir, const std::string& chat_template) {
  const ModelFiles files = load_model_files(kSamples + "stories260K.bin");
  GgufTokenizerData tok =
      gguf_tokenizer_for_model(kSamples + "stories260K.bin", kSamples + "tok512.bin", files.config);
  tok.chat_template = chat_template;
  const std::string path = dir.file("m.gguf");
  write_gguf_model(path, files.config, files.tensors, GgmlType::F32, &tok);
  return path;
}

std::string write_recipe(const test::TempDir& dir, const std::string& model,
                         const std::string& data) {
  const std::string r = dir.file("r.yaml");
  test::write_bytes(r, "model: {path: " + model + "}\ndata:\n" + data + "output: {dir: out}\n");
  return r;
}

std::string error_of(const std::string& recipe, const std::vector<std::string>& overrides = {}) {
  try {
    std::ostringstream out;
    run_data_inspect(recipe, overrides, out);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(GgufTokenizerData, CompletionDataUsesTheEmbeddedTokenizer) {
  test::TempDir dir;
  const std::string gguf = write_gguf(dir, "");
  test::write_bytes(dir.file("d.jsonl"), "{\"prompt\": \"Say one.\", \"completion\": \"one\"}\n");
  const std::string r = write_recipe(dir, gguf, "  train: d.jsonl\n  format: completion\n");
  EXPECT_EQ(model_tokenizer_source(gguf, ""), gguf);
  std::ostringstream out;
  run_data_inspect(r, {}, out);
  EXPECT_NE(out.str().find("[<s>Say one.] one</s>\n"), std::string::npos) << out.str();

  // The training path (load_base + load_data) takes it as well.
  hone::Run run;
  run.cfg = load_recipe(r, {});
  load_base(run);
  load_data(run);
  EXPECT_EQ(run.data.train.size(), 1u);
}

TEST(GgufTokenizerData, ChatDataUsesTheGgufTemplateOrSaysThereIsNone) {
  test::TempDir dir;
  test::write_bytes(dir.file("c.jsonl"),
                    "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, "
                    "{\"role\": \"assistant\", \"content\": \"Yo\"}]}\n");
  const std::string data = "  train: c.jsonl\n  format: chat\n";
  {
    const std::string gguf = write_gguf(dir, "");
    const std::string e = error_of(write_recipe(dir, gguf, data));
    EXPECT_NE(e.find(gguf + ": the GGUF has no chat template (no tokenizer.chat_template); set "
                            "data.chat_template to a built-in template"),
              std::string::npos)
        << e;
    // A built-in template needs nothing from the file.
    EXPECT_EQ(error_of(write_recipe(dir, gguf, data), {"data.chat_template=chatml"}), "");
  }
  {
    const std::string gguf =
        write_gguf(dir, "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}");
    std::ostringstream out;
    run_data_inspect(write_recipe(dir, gguf, data), {}, out);
    EXPECT_NE(out.str().find("records: 1, bad lines skipped: 0"), std::string::npos) << out.str();
    // Rendered by the GGUF's template: the prompt masked, and (the template has no generation
    // prompt to mark where the turn starts) the turn's own header trained with its content.
    EXPECT_NE(out.str().find("[<s><user>Hi]<assistant>Yo</s>"), std::string::npos) << out.str();
  }
  {
    const std::string gguf = write_gguf(dir, "{% for m in messages %}{{ m.role }");
    const std::string e = error_of(write_recipe(dir, gguf, data));
    EXPECT_NE(e.find(gguf + ": tokenizer.chat_template:1:"), std::string::npos) << e;
  }
}

TEST(GgufTokenizerData, TrainRunsOnChatDataWithTheGgufTemplate) {
  test::TempDir dir;
  const std::string gguf =
      write_gguf(dir, "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}");
  std::string lines;
  for (int i = 0; i < 4; ++i)
    lines += "{\"messages\": [{\"role\": \"user\", \"content\": \"Count " + std::to_string(i) +
             "\"}, {\"role\": \"assistant\", \"content\": \"done\"}]}\n";
  test::write_bytes(dir.file("c.jsonl"), lines);
  test::write_bytes(dir.file("r.yaml"), "model: {path: " + gguf +
                                            "}\ndata: {train: " + dir.file("c.jsonl") +
                                            ", format: chat, seq_len: 32}\n"
                                            "training: {batch_size: 1, max_steps: 1}\n"
                                            "output: {dir: " +
                                            dir.file("out") + "}\n");
  const test::Outcome o = test::run_hone("train " + dir.file("r.yaml"));
  EXPECT_EQ(o.status, 0) << o.out;
}

}  // namespace
}  // namespace hone
