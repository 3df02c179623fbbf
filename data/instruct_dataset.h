// Instruction and chat training data: JSONL records (completion, alpaca, chat) → token sequences
// with a per-token loss mask → packed (contamination-free) or padded windows.
//
// A record becomes one token sequence S and a flag per token saying whether the model is trained
// to predict it. The prompt and the target text are tokenized separately (the prompt exactly as
// it is tokenized when generating from it), so a target span decodes to exactly its text.
//
// Formats (field names are the defaults; InstructOptions::fields renames them):
//   completion  {"prompt": str, "completion": str}
//               S = [BOS] prompt | completion EOS
//   alpaca      {"instruction": str, "input": str (optional), "output": str}
//               S = [BOS] alpaca_prompt(instruction, input) | output EOS
//   chat        {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
//               rendered once with a Jinja chat template and tokenized whole; each assistant turn
//               is a target from the end of its header to the end token the template closes it
//               with (<|eot_id|>, <|im_end|>, </s>, ...), or EOS inserted when the template closes
//               the turn with no special token (see tokenize_chat).
// ("|" marks where the loss mask starts; with train_on_all every token after the first is a
// target.)
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/packing.h"
#include "data/tokenizer.h"

namespace hone {

// The standard Alpaca prompt (Stanford Alpaca's PROMPT_DICT), up to and including the line
// "### Response:\n". With a non-empty input:
//   "Below is an instruction that describes a task, paired with an input that provides further
//   context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
//   "{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
// and without one:
//   "Below is an instruction that describes a task. Write a response that appropriately
//   completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
std::string alpaca_prompt(const std::string& instruction, const std::string& input);

struct InstructOptions {
  std::string format = "completion";  // completion | alpaca | chat
  // Logical field → key in the record, e.g. {"prompt": "question", "completion": "answer"}.
  // Logical fields: completion: prompt, completion; alpaca: instruction, input, output;
  // chat: messages, role, content. Unnamed fields keep their logical name as key.
  std::map<std::string, std::string> fields;
  bool train_on_all = false;    // false: only completions / assistant turns are targets
  std::string chat_template;    // Jinja source; required for chat
  bool add_bos = true;          // BOS first (once: the template's or the tokenizer's, never both)
  bool add_eos = true;          // EOS after completions (chat: when the template adds no end token)
  int64_t seq_len = 512;        // T; a sequence longer than T + 1 tokens is truncated
  bool skip_bad_lines = false;  // false: the first bad line throws "file:line: problem"
};

// Checks that `fields` names only logical fields of `format`; returns the problems, each
// "unknown field X for format F (did you mean ...)"-style, empty when fine. Throws nothing.
std::vector<std::string> check_instruct_fields(const std::string& format,
                                               const std::map<std::string, std::string>& fields);
// The logical fields of a format ({} for an unknown format).
std::vector<std::string> instruct_field_names(const std::string& format);

// One record as tokens. tokens[i] is trained on (predicted from tokens[0..i)) iff target[i].
struct TokenizedExample {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> target;  // (len(tokens)) 1 = in the loss; target[0] is always 0
  std::string source;           // "file:line"
  int64_t n_targets() const;
};

// Prompt/completion pair → S = [BOS] prompt completion [EOS] (see the header comment).
TokenizedExample tokenize_completion(const std::string& prompt, const std::string& completion,
                                     const Tokenizer& tokenizer, const InstructOptions& options);

// A conversation (JSON array of {role, content}) → the tokens of the whole rendered
// conversation (after BOS when add_bos asks for one the text lacks), with each assistant turn as
// the template renders it in that text as targets (render_chat_spans): from the end of the
// turn's generation prompt (the header) through the end-of-turn token after its content —
// content as rendered (trimmed; Qwen3 drops earlier turns' reasoning), template text the model
// writes itself (Qwen3's think block, Llama 2's leading space), whitespace-only tokens before the
// end token. Headers, other roles and everything after the last assistant turn are not trained;
// a turn with no end token gets an inserted EOS target (add_eos), the one departure from the
// text's tokenization. The targets start where the prompt's own tokens end, so they are the ids
// the model produces after it (where a token crosses that boundary, it is trained). Throws
// hone::Error when the template fails or an assistant turn cannot be located.
TokenizedExample tokenize_chat(const nlohmann::ordered_json& messages, const Tokenizer& tokenizer,
                               const InstructOptions& options);

struct InstructStats {
  int64_t records = 0;     // good records read
  int64_t bad_lines = 0;   // skipped (skip_bad_lines)
  int64_t truncated = 0;   // sequences cut to seq_len + 1 tokens
  int64_t no_targets = 0;  // dropped: nothing left to train on (e.g. the prompt fills the window)
  int64_t tokens = 0;      // tokens of the kept sequences (after truncation)
  int64_t target_tokens = 0;
  std::vector<std::string> bad_line_messages;  // the first few "file:line: problem"
  void add(const InstructStats& o);
};

struct InstructFile {
  std::vector<TokenizedExample> examples;  // in file order; truncated; none without targets
  InstructStats stats;
};

// Reads a JSONL file (one record a line; blank lines are ignored) in options.format. A bad line
// (invalid JSON, not an object, a missing field, a wrong type, an unknown chat role) is
// "path:line: problem": thrown as hone::Error, or counted and skipped with skip_bad_lines.
InstructFile read_instruct_file(const std::string& path, const Tokenizer& tokenizer,
                                const InstructOptions& options);

// Packs sequences in order into windows of seq_len inputs: a sequence of L tokens takes L - 1
// positions (its last token is only a target), a window takes sequences while they fit, and a
// sequence never spans two windows. segment_start marks each sequence's start (attention is
// blocked across sequences, positions restart); no target crosses a boundary; the unused tail
// holds pad_id inputs with ignored targets. Sequences longer than seq_len + 1 are truncated.
std::vector<Example> pack_instruct(const std::vector<TokenizedExample>& examples, int64_t seq_len,
                                   int32_t pad_id);

// One sequence per window: inputs padded with pad_id, targets with kIgnoreIndex; no
// segment_start (nothing to block).
std::vector<Example> pad_instruct(const std::vector<TokenizedExample>& examples, int64_t seq_len,
                                  int32_t pad_id);

// The pad id of a tokenizer: tokenizer.json's pad token, else EOS, else 0.
int32_t pad_id_of(const Tokenizer& tokenizer);

// The chat template for a recipe: a built-in by name (llama3, chatml, llama2, mistral), or for
// "" the chat_template of tokenizer_config.json beside `tokenizer_path` (a tokenizer.json or its
// folder), syntax-checked so an error names that file. Throws hone::Error saying what to set when
// neither exists.
std::string resolve_chat_template(const std::string& name, const std::string& tokenizer_path);

struct InstructDataOptions {
  std::string train;          // JSONL file
  std::string val;            // optional JSONL file; then val_fraction must be 0
  double val_fraction = 0.0;  // else this share of the train records (split_train_val's rule)
  InstructOptions instruct;
  bool packing = true;  // false: pad each sequence to its own window
};

// Train and val sequences before windowing (val split off by record, so no record is on both
// sides), with the statistics of both files.
struct InstructSplit {
  std::vector<TokenizedExample> train, val;
  InstructStats stats;
};
InstructSplit read_instruct_split(const InstructDataOptions& options, const Tokenizer& tokenizer);

// read_instruct_split, then pack_instruct or pad_instruct on each side. Throws hone::Error when a
// side has no examples. `stats` (optional) receives the statistics.
TrainValSplit load_instruct_data(const InstructDataOptions& options, const Tokenizer& tokenizer,
                                 InstructStats* stats = nullptr);

}  // namespace hone
