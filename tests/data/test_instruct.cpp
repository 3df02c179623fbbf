// Instruction / chat data: JSONL formats, loss masks, bad lines, packing and padding.
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
#include "tmpdir.h"

namespace hone {
namespace {

using test::bytes_of;
using test::ByteTokenizer;

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// The tokens flagged as targets.
std::vector<int32_t> targets_of(const TokenizedExample& ex) {
  std::vector<int32_t> out;
  for (size_t i = 0; i < ex.tokens.size(); ++i)
    if (ex.target[i]) out.push_back(ex.tokens[i]);
  return out;
}

// Maximal runs of target tokens, in order.
std::vector<std::vector<int32_t>> target_spans(const TokenizedExample& ex) {
  std::vector<std::vector<int32_t>> out;
  bool in = false;
  for (size_t i = 0; i < ex.tokens.size(); ++i) {
    if (ex.target[i]) {
      if (!in) out.emplace_back();
      out.back().push_back(ex.tokens[i]);
    }
    in = ex.target[i] != 0;
  }
  return out;
}

InstructOptions opts(const std::string& format) {
  InstructOptions o;
  o.format = format;
  o.seq_len = 4096;
  return o;
}

// ---- prompts and single records -----------------------------------------------------------

TEST(AlpacaPrompt, StandardTextWithAndWithoutInput) {
  EXPECT_EQ(alpaca_prompt("Add 2 and 3.", ""),
            "Below is an instruction that describes a task. Write a response that appropriately "
            "completes the request.\n\n### Instruction:\nAdd 2 and 3.\n\n### Response:\n");
  EXPECT_EQ(alpaca_prompt("Add them.", "2, 3"),
            "Below is an instruction that describes a task, paired with an input that provides "
            "further context. Write a response that appropriately completes the request.\n\n"
            "### Instruction:\nAdd them.\n\n### Input:\n2, 3\n\n### Response:\n");
}

TEST(InstructCompletion, PromptMaskedCompletionAndEosTrained) {
  ByteTokenizer tok;
  TokenizedExample ex = tokenize_completion("Q?", "A!", tok, opts("completion"));
  EXPECT_EQ(ex.tokens, concat({{1}, bytes_of("Q?"), bytes_of("A!"), {2}}));
  EXPECT_EQ(ex.target, (std::vector<uint8_t>{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(targets_of(ex), concat({bytes_of("A!"), {2}}));
  EXPECT_EQ(ex.n_targets(), 3);
}

TEST(InstructCompletion, TrainOnAllTargetsEveryTokenButTheFirst) {
  ByteTokenizer tok;
  InstructOptions o = opts("completion");
  o.train_on_all = true;
  TokenizedExample ex = tokenize_completion("Q?", "A!", tok, o);
  EXPECT_EQ(ex.tokens, concat({{1}, bytes_of("Q?"), bytes_of("A!"), {2}}));
  EXPECT_EQ(ex.target, (std::vector<uint8_t>{0, 1, 1, 1, 1, 1}));
}

TEST(InstructCompletion, NeverADoubleBos) {
  ByteTokenizer doubling(/*extra_bos=*/true);
  TokenizedExample ex = tokenize_completion("Q", "A", doubling, opts("completion"));
  EXPECT_EQ(ex.tokens, concat({{1}, bytes_of("Q"), bytes_of("A"), {2}}));
  // add_bos / add_eos off: neither appears.
  InstructOptions o = opts("completion");
  o.add_bos = false;
  o.add_eos = false;
  ex = tokenize_completion("Q", "A", doubling, o);
  EXPECT_EQ(ex.tokens, concat({bytes_of("Q"), bytes_of("A")}));
  EXPECT_EQ(ex.target, (std::vector<uint8_t>{0, 1}));
}

// ---- JSONL files --------------------------------------------------------------------------

TEST(InstructFile, CompletionWithRemappedFields) {
  test::TempDir tmp;
  const std::string f = tmp.file("qa.jsonl");
  test::write_bytes(f,
                    "{\"question\": \"1+1?\", \"answer\": \"2\"}\n"
                    "\n"
                    "{\"question\": \"2+2?\", \"answer\": \"4\", \"extra\": 1}\r\n");
  ByteTokenizer tok;
  InstructOptions o = opts("completion");
  o.fields = {{"prompt", "question"}, {"completion", "answer"}};
  InstructFile r = read_instruct_file(f, tok, o);
  ASSERT_EQ(r.examples.size(), 2u);
  EXPECT_EQ(r.stats.records, 2);
  EXPECT_EQ(r.stats.bad_lines, 0);
  EXPECT_EQ(r.examples[0].tokens, concat({{1}, bytes_of("1+1?"), bytes_of("2"), {2}}));
  EXPECT_EQ(targets_of(r.examples[1]), concat({bytes_of("4"), {2}}));
  EXPECT_EQ(r.examples[1].source, f + ":3");
  EXPECT_EQ(r.stats.tokens, 7 + 7);
  EXPECT_EQ(r.stats.target_tokens, 4);

  // Without the mapping the default names are missing: the error names the key and line.
  o.fields.clear();
  try {
    read_instruct_file(f, tok, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), f + ":1: missing field \"prompt\"");
  }
}

TEST(InstructFile, BadLinesSkippedWithCountOrStopTheRun) {
  test::TempDir tmp;
  const std::string f = tmp.file("bad.jsonl");
  test::write_bytes(f,
                    "{\"prompt\": \"a\", \"completion\": \"b\"}\n"
                    "{\"prompt\": \"a\", \"completion\": \n"
                    "{\"prompt\": \"a\"}\n"
                    "{\"prompt\": 3, \"completion\": \"b\"}\n"
                    "[1, 2]\n"
                    "{\"prompt\": \"c\", \"completion\": \"d\"}\n");
  ByteTokenizer tok;
  InstructOptions o = opts("completion");
  o.skip_bad_lines = true;
  InstructFile r = read_instruct_file(f, tok, o);
  EXPECT_EQ(r.stats.records, 2);
  EXPECT_EQ(r.stats.bad_lines, 4);
  ASSERT_EQ(r.stats.bad_line_messages.size(), 4u);
  EXPECT_EQ(r.stats.bad_line_messages[0].rfind(f + ":2: invalid JSON: ", 0), 0u)
      << r.stats.bad_line_messages[0];
  EXPECT_EQ(r.stats.bad_line_messages[1], f + ":3: missing field \"completion\"");
  EXPECT_EQ(r.stats.bad_line_messages[2], f + ":4: field \"prompt\" must be a string (got number)");
  EXPECT_EQ(r.stats.bad_line_messages[3], f + ":5: expected a JSON object, got array");
  EXPECT_EQ(r.examples[1].source, f + ":6");

  o.skip_bad_lines = false;
  try {
    read_instruct_file(f, tok, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(f + ":2: invalid JSON", 0), 0u) << e.what();
  }
}

TEST(InstructFile, AlpacaWithAndWithoutInput) {
  test::TempDir tmp;
  const std::string f = tmp.file("alpaca.jsonl");
  test::write_bytes(f,
                    "{\"instruction\": \"Add.\", \"input\": \"2, 3\", \"output\": \"5\"}\n"
                    "{\"instruction\": \"Say hi.\", \"input\": \"\", \"output\": \"hi\"}\n"
                    "{\"instruction\": \"Say yo.\", \"output\": \"yo\"}\n"
                    "{\"instruction\": \"Say yo.\", \"input\": [], \"output\": \"yo\"}\n");
  ByteTokenizer tok;
  InstructOptions o = opts("alpaca");
  o.skip_bad_lines = true;
  InstructFile r = read_instruct_file(f, tok, o);
  ASSERT_EQ(r.examples.size(), 3u);
  EXPECT_EQ(r.examples[0].tokens,
            concat({{1}, bytes_of(alpaca_prompt("Add.", "2, 3")), bytes_of("5"), {2}}));
  EXPECT_EQ(targets_of(r.examples[0]), concat({bytes_of("5"), {2}}));
  EXPECT_EQ(r.examples[1].tokens,
            concat({{1}, bytes_of(alpaca_prompt("Say hi.", "")), bytes_of("hi"), {2}}));
  EXPECT_EQ(targets_of(r.examples[2]), concat({bytes_of("yo"), {2}}));
  EXPECT_EQ(r.stats.bad_lines, 1);
  EXPECT_EQ(r.stats.bad_line_messages[0], f + ":4: field \"input\" must be a string (got array)");
}

TEST(InstructFile, TruncationAndRecordsWithNothingLeftToTrain) {
  test::TempDir tmp;
  const std::string f = tmp.file("long.jsonl");
  test::write_bytes(f,
                    "{\"prompt\": \"ab\", \"completion\": \"cdefghij\"}\n"    // 1+2+8+1 = 12
                    "{\"prompt\": \"abcdefghijk\", \"completion\": \"x\"}\n"  // prompt fills
                    "{\"prompt\": \"a\", \"completion\": \"b\"}\n");
  ByteTokenizer tok;
  InstructOptions o = opts("completion");
  o.seq_len = 8;
  InstructFile r = read_instruct_file(f, tok, o);
  EXPECT_EQ(r.stats.records, 3);
  EXPECT_EQ(r.stats.truncated, 2);
  EXPECT_EQ(r.stats.no_targets, 1);
  ASSERT_EQ(r.examples.size(), 2u);
  EXPECT_EQ(r.examples[0].tokens.size(), 9u);
  EXPECT_EQ(r.examples[0].tokens, concat({{1}, bytes_of("ab"), bytes_of("cdefgh")}));
  EXPECT_EQ(r.stats.tokens, 9 + 4);
}

// ---- chat ---------------------------------------------------------------------------------

const char* kChatJsonl =
    R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]})"
    "\n";

TEST(InstructChat, BuiltinTemplateOnAByteTokenizerMasksAllButAssistantTurns) {
  test::TempDir tmp;
  const std::string f = tmp.file("chat.jsonl");
  test::write_bytes(f, kChatJsonl);
  ByteTokenizer tok;
  InstructOptions o = opts("chat");
  o.chat_template = builtin_chat_template("chatml");
  InstructFile r = read_instruct_file(f, tok, o);
  ASSERT_EQ(r.examples.size(), 1u);
  const TokenizedExample& ex = r.examples[0];
  // <|im_end|> is plain text to a byte tokenizer, so EOS is appended to each assistant turn.
  auto spans = target_spans(ex);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0], concat({bytes_of("Hello!"), {2}}));
  EXPECT_EQ(spans[1], concat({bytes_of("4"), {2}}));
  EXPECT_EQ(ex.tokens.front(), 1);  // BOS from the tokenizer (chatml has none)
  EXPECT_EQ(std::count(ex.tokens.begin(), ex.tokens.end(), 1), 1);
  // Everything else is the rendered conversation, in order.
  std::vector<int32_t> text_ids;
  for (int32_t id : ex.tokens)
    if (id >= 3) text_ids.push_back(id);
  nlohmann::ordered_json rec = nlohmann::ordered_json::parse(kChatJsonl);
  EXPECT_EQ(text_ids, bytes_of(render_chat_json(o.chat_template, rec["messages"], false, "", "")));
}

TEST(InstructChat, RemappedFieldsAndBadConversations) {
  test::TempDir tmp;
  const std::string f = tmp.file("chat.jsonl");
  test::write_bytes(
      f,
      R"({"conversation": [{"from": "user", "value": "Hi"}, {"from": "assistant", "value": "Yo"}]})"
      "\n"
      R"({"conversation": [{"from": "user", "value": "Hi"}]})"
      "\n"
      R"({"conversation": [{"from": "robot", "value": "Hi"}]})"
      "\n"
      R"({"conversation": "Hi"})"
      "\n"
      R"({"conversation": [{"from": "user"}]})"
      "\n");
  ByteTokenizer tok;
  InstructOptions o = opts("chat");
  o.chat_template = builtin_chat_template("chatml");
  o.fields = {{"messages", "conversation"}, {"role", "from"}, {"content", "value"}};
  o.skip_bad_lines = true;
  InstructFile r = read_instruct_file(f, tok, o);
  ASSERT_EQ(r.examples.size(), 1u);
  EXPECT_EQ(target_spans(r.examples[0]),
            (std::vector<std::vector<int32_t>>{concat({bytes_of("Yo"), {2}})}));
  ASSERT_EQ(r.stats.bad_lines, 4);
  EXPECT_EQ(r.stats.bad_line_messages[0], f + ":2: no assistant message to train on");
  EXPECT_EQ(r.stats.bad_line_messages[1],
            f + ":3: conversation[0]: unknown role \"robot\" (expected system, user or assistant)");
  EXPECT_EQ(r.stats.bad_line_messages[2],
            f + ":4: field \"conversation\" must be an array (got string)");
  EXPECT_EQ(r.stats.bad_line_messages[3], f + ":5: conversation[0]: missing field \"value\"");
}

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

// ---- llama2.c tokenizer (tok512.bin shipped in the repository) -----------------------------

TEST(InstructLlama2c, AlpacaOnTok512) {
  auto tok = load_tokenizer(std::string(HONE_SOURCE_DIR) + "/data/samples/stories260K/tok512.bin");
  TokenizedExample ex =
      tokenize_completion(alpaca_prompt("Count.", ""), "one two", *tok, opts("alpaca"));
  EXPECT_EQ(ex.tokens.front(), tok->bos_id());
  EXPECT_EQ(std::count(ex.tokens.begin(), ex.tokens.end(), tok->bos_id()), 1);
  EXPECT_EQ(ex.tokens.back(), tok->eos_id());
  std::vector<int32_t> t = targets_of(ex);
  ASSERT_FALSE(t.empty());
  EXPECT_EQ(t.back(), tok->eos_id());
  t.pop_back();
  EXPECT_EQ(t, tok->encode("one two", false, false));
  // The masked part is exactly the prompt.
  std::vector<int32_t> prompt(ex.tokens.begin(), ex.tokens.end() - static_cast<long>(t.size()) - 1);
  EXPECT_EQ(prompt, tok->encode(alpaca_prompt("Count.", ""), true, false));
}

// ---- packing and padding ------------------------------------------------------------------

TokenizedExample make(int n, int first_target, int base) {
  TokenizedExample ex;
  for (int i = 0; i < n; ++i) {
    ex.tokens.push_back(base + i);
    ex.target.push_back(i >= first_target ? 1 : 0);
  }
  return ex;
}

TEST(InstructPacking, SegmentsFollowExampleBoundariesAndNeverSplit) {
  // Lengths 4, 3, 5, 9 (> T+1 = 7: truncated), 2 with T = 6.
  std::vector<TokenizedExample> ex = {make(4, 2, 100), make(3, 1, 200), make(5, 3, 300),
                                      make(9, 1, 400), make(2, 1, 500)};
  std::vector<Example> w = pack_instruct(ex, 6, /*pad_id=*/0);
  // Window 0: ex0 (3 positions) + ex1 (2) ; ex2 needs 4 > 1 left. Window 1: ex2 (4) ; ex3 needs 6.
  // Window 2: ex3 truncated to 7 tokens (6 positions). Window 3: ex4 (1).
  ASSERT_EQ(w.size(), 4u);
  const int I = kIgnoreIndex;
  EXPECT_EQ(w[0].ids, (std::vector<int32_t>{100, 101, 102, 200, 201, 0}));
  EXPECT_EQ(w[0].targets, (std::vector<int32_t>{I, 102, 103, 201, 202, I}));
  EXPECT_EQ(w[0].segment_start, (std::vector<int32_t>{0, 0, 0, 3, 3, 5}));
  EXPECT_EQ(w[1].ids, (std::vector<int32_t>{300, 301, 302, 303, 0, 0}));
  EXPECT_EQ(w[1].targets, (std::vector<int32_t>{I, I, 303, 304, I, I}));
  EXPECT_EQ(w[1].segment_start, (std::vector<int32_t>{0, 0, 0, 0, 4, 4}));
  EXPECT_EQ(w[2].ids, (std::vector<int32_t>{400, 401, 402, 403, 404, 405}));
  EXPECT_EQ(w[2].targets, (std::vector<int32_t>{401, 402, 403, 404, 405, 406}));
  EXPECT_EQ(w[2].segment_start, (std::vector<int32_t>{0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(w[3].ids, (std::vector<int32_t>{500, 0, 0, 0, 0, 0}));
  EXPECT_EQ(w[3].targets, (std::vector<int32_t>{501, I, I, I, I, I}));
  // Deterministic.
  std::vector<Example> again = pack_instruct(ex, 6, 0);
  for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(again[i].ids, w[i].ids);
}

TEST(InstructPacking, NoTargetCrossesASegmentAndEveryExampleIsWhole) {
  // Many random-length examples: each window's segments are contiguous runs whose tokens come
  // from one example, in order, and each example appears exactly once.
  std::vector<TokenizedExample> ex;
  uint32_t s = 12345;
  for (int i = 0; i < 60; ++i) {
    s = s * 1103515245u + 12345u;
    ex.push_back(make(2 + static_cast<int>((s >> 16) % 20), 1, 1000 * (i + 1)));
  }
  const int64_t T = 16;
  std::vector<Example> w = pack_instruct(ex, T, 0);
  std::vector<int> seen(ex.size(), 0);
  for (const Example& e : w) {
    ASSERT_EQ(e.ids.size(), static_cast<size_t>(T));
    ASSERT_EQ(e.segment_start.size(), static_cast<size_t>(T));
    for (int64_t i = 0; i < T; ++i) {
      const int32_t st = e.segment_start[static_cast<size_t>(i)];
      ASSERT_LE(st, i);
      if (e.ids[static_cast<size_t>(i)] == 0) continue;  // padding
      const int32_t id0 = e.ids[static_cast<size_t>(st)];
      const int k = id0 / 1000 - 1;
      EXPECT_EQ(id0 % 1000, 0) << "a segment starts at its example's first token";
      EXPECT_EQ(e.ids[static_cast<size_t>(i)], id0 + (i - st));
      const int32_t t = e.targets[static_cast<size_t>(i)];
      if (t != kIgnoreIndex) {
        EXPECT_EQ(t, e.ids[static_cast<size_t>(i)] + 1);
      }
      if (i == st) ++seen[static_cast<size_t>(k)];
    }
  }
  for (size_t k = 0; k < ex.size(); ++k) EXPECT_EQ(seen[k], 1) << "example " << k;
}

TEST(InstructPadding, OneExamplePerWindowPaddedAndIgnored) {
  std::vector<TokenizedExample> ex = {make(4, 2, 100), make(9, 1, 400)};
  std::vector<Example> w = pad_instruct(ex, 6, /*pad_id=*/7);
  ASSERT_EQ(w.size(), 2u);
  const int I = kIgnoreIndex;
  EXPECT_EQ(w[0].ids, (std::vector<int32_t>{100, 101, 102, 7, 7, 7}));
  EXPECT_EQ(w[0].targets, (std::vector<int32_t>{I, 102, 103, I, I, I}));
  EXPECT_TRUE(w[0].segment_start.empty());
  EXPECT_EQ(w[1].targets, (std::vector<int32_t>{401, 402, 403, 404, 405, 406}));
}

TEST(InstructData, ValFractionSplitsByRecordAndPackingIsSelectable) {
  test::TempDir tmp;
  const std::string f = tmp.file("d.jsonl");
  std::string text;
  for (int i = 0; i < 10; ++i)
    text += "{\"prompt\": \"p" + std::to_string(i) + "\", \"completion\": \"c\"}\n";
  test::write_bytes(f, text);
  ByteTokenizer tok;
  InstructDataOptions o;
  o.train = f;
  o.val_fraction = 0.2;
  o.instruct = opts("completion");
  o.instruct.seq_len = 16;
  InstructSplit s = read_instruct_split(o, tok);
  EXPECT_EQ(s.train.size(), 8u);
  EXPECT_EQ(s.val.size(), 2u);
  InstructStats st;
  TrainValSplit packed = load_instruct_data(o, tok, &st);
  EXPECT_EQ(st.records, 10);
  // Each record is 1 + 2 + 1 + 1 = 5 tokens = 4 positions: 4 per window of 16.
  EXPECT_EQ(packed.train.size(), 2u);
  EXPECT_EQ(packed.val.size(), 1u);
  o.packing = false;
  TrainValSplit padded = load_instruct_data(o, tok);
  EXPECT_EQ(padded.train.size(), 8u);
  EXPECT_EQ(padded.val.size(), 2u);
  EXPECT_EQ(padded.train[0].ids[4], 2);  // padded with EOS (no pad token)
}

TEST(InstructFields, CheckNamesUnknownFields) {
  EXPECT_TRUE(check_instruct_fields("completion", {{"prompt", "q"}}).empty());
  auto p = check_instruct_fields("alpaca", {{"prompt", "q"}});
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0],
            "unknown field \"prompt\" for format alpaca (expected instruction, input, output)");
}

}  // namespace
}  // namespace hone
