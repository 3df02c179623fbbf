// Chat data on the real Llama 3, Qwen3 and Mistral templates (../shared): template-faithful
// masking of each assistant turn.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "common.h"
#include "data/chat_template.h"
#include "data/hf_tokenizer.h"
#include "data/instruct_dataset.h"
#include "data/tokenizer.h"
#include "fake_tokenizer.h"
#include "instruct_test_util.h"
#include "tmpdir.h"

namespace hone {
namespace {

using test::bytes_of;
using test::ByteTokenizer;
using test::concat;
using test::opts;
using test::target_spans;
using test::targets_of;

// ---- chat on real templates: template-faithful masking -------------------------------------
//
// What is trained for an assistant turn: what the model produces after the turn's generation
// prompt, as the full conversation renders it — the content (as the template renders it), any
// text the template puts around it that the model must write itself (Qwen3's think block,
// Llama 2's leading space) and the end-of-turn token (<|eot_id|>, <|im_end|>, </s>); never the
// header, the newline after <|im_end|>, or anything after the last assistant turn.

// The text of ids[from, to) as it reads inside the sequence (special tokens as their text).
std::string text_of(const HfTokenizer& tok, const std::vector<int32_t>& ids, size_t from,
                    size_t to) {
  std::string out;
  for (size_t i = from; i < to; ++i) out += tok.decode_token(i > 0 ? ids[i - 1] : -1, ids[i]);
  return out;
}

// The text of each maximal run of trained tokens.
std::vector<std::string> trained_texts(const HfTokenizer& tok, const TokenizedExample& ex) {
  std::vector<std::string> out;
  for (size_t i = 0; i < ex.tokens.size();) {
    if (!ex.target[i]) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < ex.tokens.size() && ex.target[j]) ++j;
    out.push_back(text_of(tok, ex.tokens, i, j));
    i = j;
  }
  return out;
}

// Loading a real tokenizer takes a while: once per file for all the tests here.
const HfTokenizer& shared_tokenizer(const std::string& path) {
  static std::map<std::string, std::unique_ptr<HfTokenizer>> loaded;
  auto& t = loaded[path];
  if (!t) t = std::make_unique<HfTokenizer>(path);
  return *t;
}

struct RealChat {
  std::string tokenizer;  // folder under ../shared/tokenizers
  std::string tmpl;       // built-in name, or "" for tokenizer_config.json's
};

// Checks a conversation end to end: the sequence is exactly the tokenization of the rendered
// conversation; the trained runs read `want`; and each trained turn whose prompt (messages[:k]
// with add_generation_prompt) begins the rendered text starts right where that prompt's own
// tokens end, so the trained ids are the ones the model produces after that prompt.
void check_chat(const RealChat& rc, const std::string& messages_json,
                const std::vector<std::string>& want) {
  SCOPED_TRACE(rc.tokenizer + " / " + messages_json);
  const std::string path = test::shared_file("tokenizers/" + rc.tokenizer + "/tokenizer.json");
  const HfTokenizer& tok = shared_tokenizer(path);
  InstructOptions o = opts("chat");
  o.chat_template = resolve_chat_template(rc.tmpl, path);
  const auto messages = nlohmann::ordered_json::parse(messages_json);
  const TokenizedExample ex = tokenize_chat(messages, tok, o);
  const std::string bos = tok.bos_id() >= 0 ? tok.id_to_token(tok.bos_id()) : "";
  const std::string eos = tok.eos_id() >= 0 ? tok.id_to_token(tok.eos_id()) : "";
  const std::string text = render_chat_json(o.chat_template, messages, false, bos, eos);
  EXPECT_EQ(ex.tokens, tok.encode(text, false, false));
  EXPECT_EQ(trained_texts(tok, ex), want);
  for (size_t k = 0; k < messages.size(); ++k) {
    if (messages[k]["role"] != "assistant") continue;
    nlohmann::ordered_json head = nlohmann::ordered_json::array();
    for (size_t j = 0; j < k; ++j) head.push_back(messages[j]);
    std::string prompt;
    try {
      prompt = render_chat_json(o.chat_template, head, true, bos, eos);
    } catch (const Error&) {
      continue;
    }
    if (!text.starts_with(prompt)) continue;
    const std::vector<int32_t> p = tok.encode(prompt, false, false);
    ASSERT_LT(p.size(), ex.tokens.size());
    EXPECT_TRUE(std::equal(p.begin(), p.end(), ex.tokens.begin())) << "message " << k;
    EXPECT_FALSE(ex.target[p.size() - 1]) << "message " << k;
    EXPECT_TRUE(ex.target[p.size()]) << "message " << k;
  }
}

const RealChat kLlama3{"llama3", ""}, kQwen3{"qwen3", ""};

// The reference conversations: the sequence equals the reference ids of the rendered text.
void check_chat_fixtures(const std::string& model,
                         const std::map<std::string, std::vector<std::string>>& want) {
  HONE_REQUIRE_SHARED(expected, "fixtures/chat/expected_" + model + ".jsonl");
  HONE_REQUIRE_SHARED(path, "tokenizers/" + model + "/tokenizer.json");
  const HfTokenizer& tok = shared_tokenizer(path);
  InstructOptions o = opts("chat");
  o.chat_template = resolve_chat_template("", path);
  std::ifstream in(expected);
  std::string line;
  size_t checked = 0;
  while (std::getline(in, line)) {
    const auto rec = nlohmann::ordered_json::parse(line);
    if (rec["add_generation_prompt"].get<bool>()) continue;
    const std::string name = rec["name"];
    SCOPED_TRACE(model + " / " + name);
    const TokenizedExample ex = tokenize_chat(rec["messages"], tok, o);
    EXPECT_EQ(ex.tokens, rec["ids"].get<std::vector<int32_t>>());
    ASSERT_TRUE(want.count(name));
    EXPECT_EQ(trained_texts(tok, ex), want.at(name));
    check_chat({model, ""}, rec["messages"].dump(), want.at(name));
    ++checked;
  }
  EXPECT_EQ(checked, want.size());
}

TEST(InstructChatReal, Llama3FixturesIdsAndTrainedTurns) {
  check_chat_fixtures("llama3",
                      {{"single-user", {}},
                       {"user-assistant", {"7<|eot_id|>"}},
                       {"system-multi-turn", {"Tokyo<|eot_id|>", "Paris<|eot_id|>"}},
                       {"whitespace-and-unicode", {"日本語で答えます 🦙<|eot_id|>"}},
                       {"empty-content", {"<|eot_id|>"}}});
}

TEST(InstructChatReal, Qwen3FixturesIdsAndTrainedTurns) {
  // The last turn after the last user message carries the (empty) think block the model
  // writes; earlier turns are rendered, and trained, without one.
  check_chat_fixtures(
      "qwen3",
      {{"single-user", {}},
       {"user-assistant", {"<think>\n\n</think>\n\n7<|im_end|>"}},
       {"system-multi-turn", {"Tokyo<|im_end|>", "<think>\n\n</think>\n\nParis<|im_end|>"}},
       {"whitespace-and-unicode",
        {"<think>\n\n</think>\n\n日本語で答えます 🦙<|im_end|>"}},
       // Not an extra <|im_end|> before <think>: the turn as rendered.
       {"empty-content", {"<think>\n\n</think>\n\n<|im_end|>"}}});
}

TEST(InstructChatReal, Llama3TrimmedContentAndEndingWithAUserTurn) {
  HONE_REQUIRE_SHARED(tok, "tokenizers/llama3/tokenizer.json");
  check_chat(kLlama3,
             R"([{"role": "user", "content": "Ünïcode? 日本語"},
                 {"role": "assistant", "content": "  Yes: 日本語 🎉\nline 2  "}])",
             {"Yes: 日本語 🎉\nline 2<|eot_id|>"});
  // Nothing after the last assistant turn is trained; earlier turns are.
  check_chat(kLlama3,
             R"([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                 {"role": "user", "content": "Bye"}])",
             {"Hello!<|eot_id|>"});
  check_chat(kLlama3,
             R"([{"role": "assistant", "content": "Welcome."},
                 {"role": "user", "content": "Thanks"}])",
             {"Welcome.<|eot_id|>"});
}

TEST(InstructChatReal, Qwen3ThinkBlocksAsRendered) {
  HONE_REQUIRE_SHARED(tok, "tokenizers/qwen3/tokenizer.json");
  // An earlier turn's reasoning is dropped by the template, so it is not trained; the last
  // turn's is.
  check_chat(kQwen3,
             R"([{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "q1"},
                 {"role": "assistant", "content": "<think>\nr1\n</think>\n\na1"},
                 {"role": "user", "content": "q2"},
                 {"role": "assistant", "content": "<think>\nr2\n</think>\n\na2"}])",
             {"a1<|im_end|>", "<think>\nr2\n</think>\n\na2<|im_end|>"});
  check_chat(kQwen3,
             R"([{"role": "user", "content": "q"},
                 {"role": "assistant", "content": "a", "reasoning_content": "because"}])",
             {"<think>\nbecause\n</think>\n\na<|im_end|>"});
  // Two assistant turns in a row: the first is rendered without a think block only once the
  // second exists (its prompt alone renders it with one).
  check_chat(kQwen3,
             R"([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a1"},
                 {"role": "assistant", "content": "a2"}])",
             {"a1<|im_end|>", "<think>\n\n</think>\n\na2<|im_end|>"});
}

TEST(InstructChatReal, Qwen3EndingWithAUserTurn) {
  HONE_REQUIRE_SHARED(tok, "tokenizers/qwen3/tokenizer.json");
  check_chat(kQwen3,
             R"([{"role": "user", "content": "q"},
                 {"role": "assistant", "content": "<think>\nr\n</think>\n\nA"},
                 {"role": "user", "content": "more"}])",
             {"A<|im_end|>"});
  // Opening with the assistant: its prompt would be the empty conversation, on which the
  // template raises (messages[0].role, as in transformers).
  check_chat(kQwen3,
             R"([{"role": "assistant", "content": "Welcome."},
                 {"role": "user", "content": "Thanks"}])",
             {"Welcome.<|im_end|>"});
}

// A content starting with "\n" after Qwen3's "<|im_start|>assistant\n" tokenizes as one "\n\n"
// across the header's end: the sequence stays the text's tokenization and that token, which
// holds output, is trained (the header's own "\n" comes with it).
TEST(InstructChatReal, TokenCrossingTheHeaderEndIsTrained) {
  HONE_REQUIRE_SHARED(path, "tokenizers/qwen3/tokenizer.json");
  const HfTokenizer& tok = shared_tokenizer(path);
  InstructOptions o = opts("chat");
  o.chat_template = resolve_chat_template("", path);
  const auto messages = nlohmann::ordered_json::parse(
      R"([{"role": "user", "content": "q"}, {"role": "assistant", "content": "\nA1"},
          {"role": "user", "content": "q2"}, {"role": "assistant", "content": "A2"}])");
  const TokenizedExample ex = tokenize_chat(messages, tok, o);
  const std::string text = render_chat_json(o.chat_template, messages, false, "", "<|im_end|>");
  ASSERT_NE(text.find("<|im_start|>assistant\n\nA1<|im_end|>"), std::string::npos);
  EXPECT_EQ(ex.tokens, tok.encode(text, false, false));
  EXPECT_EQ(trained_texts(tok, ex),
            (std::vector<std::string>{"\n\nA1<|im_end|>", "<think>\n\n</think>\n\nA2<|im_end|>"}));
}

// train_on: all trains every token but the first, whatever the template does with the content,
// with one BOS when the template has none.
TEST(InstructChat, TrainOnAllIsTheWholeRenderingAfterOneBos) {
  test::ByteTokenizer doubling(/*extra_bos=*/true);
  InstructOptions o = opts("chat");
  o.train_on_all = true;
  o.chat_template =
      "{% for m in messages %}<{{ m.role }}>{{ m.content | upper }}</{{ m.role }}>{% endfor %}";
  const auto messages = nlohmann::ordered_json::parse(
      R"([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])");
  const TokenizedExample ex = tokenize_chat(messages, doubling, o);
  EXPECT_EQ(ex.tokens, concat({{1}, bytes_of("<user>Q</user><assistant>A</assistant>")}));
  EXPECT_EQ(ex.n_targets(), static_cast<int64_t>(ex.tokens.size()) - 1);
  EXPECT_EQ(ex.target[0], 0);
}

TEST(InstructChatReal, MistralHasNoTemplateBuiltinsTrainTheSpaceAndEos) {
  HONE_REQUIRE_SHARED(tok, "tokenizers/mistral/tokenizer.json");
  try {
    resolve_chat_template("", tok);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no chat_template"), std::string::npos) << e.what();
  }
  const std::string conv =
      R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of Japan?"},
          {"role": "assistant", "content": "Tokyo"}, {"role": "user", "content": "And France?"},
          {"role": "assistant", "content": "Paris"}, {"role": "user", "content": "Thanks"}])";
  check_chat({"mistral", "mistral"}, conv, {" Tokyo</s>", " Paris</s>"});
  check_chat({"mistral", "llama2"}, conv, {" Tokyo </s>", " Paris </s>"});
}

TEST(InstructChatReal, UserOnlyConversationIsABadLineNamingTheLine) {
  HONE_REQUIRE_SHARED(path, "tokenizers/qwen3/tokenizer.json");
  const HfTokenizer& tok = shared_tokenizer(path);
  test::TempDir tmp;
  const std::string f = tmp.file("chat.jsonl");
  test::write_bytes(
      f,
      R"({"messages": [{"role": "user", "content": "Hi"}]})"
      "\n"
      R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}, {"role": "user", "content": "?"}]})"
      "\n");
  InstructOptions o = opts("chat");
  o.chat_template = resolve_chat_template("", path);
  try {
    read_instruct_file(f, tok, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), f + ":1: no assistant message to train on");
  }
  o.skip_bad_lines = true;
  InstructFile r = read_instruct_file(f, tok, o);
  EXPECT_EQ(r.stats.bad_lines, 1);
  ASSERT_EQ(r.examples.size(), 1u);
  EXPECT_EQ(trained_texts(tok, r.examples[0]), std::vector<std::string>{"Yo<|im_end|>"});
}

// A template that rewrites the content cannot be located: a clear error, not a wrong mask.
TEST(InstructChatReal, TemplateThatRewritesTheContentIsAClearError) {
  ByteTokenizer tok;
  InstructOptions o = opts("chat");
  o.chat_template =
      "{% for m in messages %}<{{ m.role }}>{{ m.content | upper }}</{{ m.role }}>{% endfor %}";
  try {
    tokenize_chat(
        nlohmann::ordered_json::parse(
            R"([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])"),
        tok, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("content of message 1 (assistant) is not rendered as given"),
        std::string::npos)
        << e.what();
  }
}

TEST(InstructChat, NoTemplateIsAClearError) {
  test::TempDir tmp;
  test::write_bytes(tmp.file("tok.bin"), "x");
  try {
    resolve_chat_template("", tmp.file("tok.bin"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("set data.chat_template"), std::string::npos) << e.what();
  }
  EXPECT_EQ(resolve_chat_template("llama3", tmp.file("tok.bin")), builtin_chat_template("llama3"));
}

}  // namespace
}  // namespace hone
