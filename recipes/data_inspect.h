// `hone data inspect`: what a recipe's data becomes before any training — record, token and
// target counts, truncations, bad lines, a length histogram, and one example with its masked
// (not trained on) part marked. Also the recipe → data-options glue shared with load_data.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "data/instruct_dataset.h"
#include "data/tokenizer.h"
#include "recipes/recipe.h"

namespace hone {

// model.tokenizer, else the tokenizer inside / beside model.path, else a GGUF model.path itself
// (its embedded tokenizer). Throws hone::Error naming the recipe when there is none.
std::string recipe_tokenizer_path(const RecipeConfig& cfg);

// The options of an instruction-data recipe (format completion | alpaca | chat); for chat the
// template is resolved here (data.chat_template, else tokenizer_config.json beside
// `tokenizer_path`, or the GGUF's own template when `tokenizer_path` is a GGUF model).
InstructDataOptions instruct_data_options(const RecipeConfig& cfg,
                                          const std::string& tokenizer_path);

// One example as text with the tokens that are not targets marked: inside [brackets], or with
// `ansi` dimmed (ANSI SGR 2) instead. BOS and EOS show their name without surrounding
// whitespace (<s>, <|im_end|>; <bos> / <eos> when they have no text).
std::string render_masked_example(const TokenizedExample& ex, const Tokenizer& tokenizer,
                                  bool ansi = false);

// The report for a loaded recipe. `ansi`: dim the masked text instead of bracketing it.
void write_data_report(const RecipeConfig& cfg, const Tokenizer& tokenizer,
                       const std::string& tokenizer_path, std::ostream& out, bool ansi = false);

// Loads the recipe (with `overrides`) and its tokenizer and writes the report to `out`; ANSI dim
// only when `out` is std::cout and stdout is a terminal.
void run_data_inspect(const std::string& recipe, const std::vector<std::string>& overrides,
                      std::ostream& out);

}  // namespace hone
