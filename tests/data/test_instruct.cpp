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
