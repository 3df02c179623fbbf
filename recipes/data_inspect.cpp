#include "recipes/data_inspect.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "autograd/error.h"
#include "data/text_dataset.h"
#include "recipes/model_tokenizer.h"

namespace hone {

std::string recipe_tokenizer_path(const RecipeConfig& cfg) {
  std::string found = model_tokenizer_source(cfg.model.path, cfg.model.tokenizer);
  if (!found.empty()) return found;
  throw Error(cfg.source + ": model.tokenizer: no tokenizer found beside " + cfg.model.path +
              " (give model.tokenizer)");
}

InstructDataOptions instruct_data_options(const RecipeConfig& cfg,
                                          const std::string& tokenizer_path) {
  const DataRecipe& d = cfg.data;
  InstructDataOptions o;
  o.train = d.train;
  o.val = d.val;
  o.val_fraction = d.val_fraction;
  o.packing = d.packing;
  InstructOptions& i = o.instruct;
  i.format = d.format;
  i.fields = d.fields;
  i.train_on_all = d.train_on == "all";
  i.add_bos = d.add_bos;
  i.add_eos = d.add_eos;
  i.seq_len = d.seq_len;
  i.skip_bad_lines = d.on_bad_line == "skip";
  if (d.format == "chat") {
    try {
      i.chat_template = chat_template_for_model(d.chat_template, tokenizer_path);
    } catch (const Error& e) {
      throw Error(cfg.source + ": data.chat_template: " + e.what());
    }
  }
  return o;
}

std::string render_masked_example(const TokenizedExample& ex, const Tokenizer& tokenizer,
                                  bool ansi) {
  std::string out;
  int32_t prev = -1;
  bool masked = false;
  const char* open = ansi ? "\033[2m" : "[";
  const char* close = ansi ? "\033[0m" : "]";
  for (size_t i = 0; i < ex.tokens.size(); ++i) {
    const int32_t id = ex.tokens[i];
    std::string piece = tokenizer.decode_token(prev, id);
    if (id == tokenizer.bos_id() || id == tokenizer.eos_id()) {
      // llama2.c spells them "\n<s>\n" / "\n</s>\n": show the bare name.
      const size_t a = piece.find_first_not_of(" \n");
      piece = a == std::string::npos ? "" : piece.substr(a, piece.find_last_not_of(" \n") - a + 1);
      if (piece.empty()) piece = id == tokenizer.bos_id() ? "<bos>" : "<eos>";
    }
    prev = id;
    const bool m = ex.target[i] == 0;
    if (m != masked) out += m ? open : close;
    masked = m;
    out += piece;
  }
  if (masked) out += close;
  return out;
}

namespace {

struct SideCounts {
  int64_t examples = 0, tokens = 0, targets = 0;
};

SideCounts count(const std::vector<TokenizedExample>& v) {
  SideCounts c;
  for (const auto& e : v) {
    ++c.examples;
    c.tokens += static_cast<int64_t>(e.tokens.size());
    c.targets += e.n_targets();
  }
  return c;
}

std::string pct(int64_t a, int64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", b > 0 ? 100.0 * static_cast<double>(a) / b : 0.0);
  return buf;
}

void histogram(const std::vector<const TokenizedExample*>& all, int64_t max_len,
               std::ostream& out) {
  constexpr int64_t kBins = 10;
  constexpr int64_t kWidth = 40;
  const int64_t width = std::max<int64_t>(1, (max_len + kBins - 1) / kBins);
  std::vector<int64_t> bins(kBins, 0);
  for (const auto* e : all) {
    const int64_t len = static_cast<int64_t>(e->tokens.size());
    bins[static_cast<size_t>(std::min(kBins - 1, std::max<int64_t>(0, len - 1) / width))]++;
  }
  const int64_t top = *std::max_element(bins.begin(), bins.end());
  out << "length histogram (tokens per example):\n";
  for (int64_t b = 0; b < kBins; ++b) {
    const int64_t n = bins[static_cast<size_t>(b)];
    const int64_t bar = top > 0 ? (n * kWidth + top - 1) / top : 0;
    char range[64];
    std::snprintf(range, sizeof range, "  %6lld-%-6lld |", static_cast<long long>(b * width + 1),
                  static_cast<long long>((b + 1) * width));
    out << range << std::string(static_cast<size_t>(bar), '#') << " " << n << "\n";
  }
}

}  // namespace

void write_data_report(const RecipeConfig& cfg, const Tokenizer& tokenizer,
                       const std::string& tokenizer_path, std::ostream& out, bool ansi) {
  const DataRecipe& d = cfg.data;
  out << "data: " << d.train << "\n"
      << "format " << d.format << ", seq_len " << d.seq_len << ", packing "
      << (d.packing ? "true" : "false");
  if (d.format != "text") out << ", train_on " << d.train_on << ", on_bad_line " << d.on_bad_line;
  out << "\ntokenizer: " << tokenizer_path << "\n";

  if (d.format == "text") {
    TextDataOptions o;
    o.train = d.train;
    o.val = d.val;
    o.val_fraction = d.val_fraction;
    o.seq_len = d.seq_len;
    o.add_bos = d.add_bos;
    o.add_eos = d.add_eos;
    TrainValSplit s = load_text_data(o, tokenizer);
    out << "train: " << s.train.size() << " windows, " << s.train.size() * d.seq_len
        << " target tokens\n"
        << "val: " << s.val.size() << " windows, " << s.val.size() * d.seq_len
        << " target tokens\n";
    return;
  }

  const InstructDataOptions o = instruct_data_options(cfg, tokenizer_path);
  InstructSplit s = read_instruct_split(o, tokenizer);
  const InstructStats& st = s.stats;
  out << "records: " << st.records << ", bad lines skipped: " << st.bad_lines
      << ", truncated to seq_len+1 = " << d.seq_len + 1 << ": " << st.truncated
      << ", dropped with no target left: " << st.no_targets << "\n";
  const int32_t pad = pad_id_of(tokenizer);
  auto side = [&](const char* name, const std::vector<TokenizedExample>& v) {
    SideCounts c = count(v);
    const size_t windows =
        (o.packing ? pack_instruct(v, d.seq_len, pad) : pad_instruct(v, d.seq_len, pad)).size();
    out << name << ": " << c.examples << " examples, " << c.tokens << " tokens, " << c.targets
        << " target tokens (" << pct(c.targets, c.tokens) << ") in " << windows << " windows of "
        << d.seq_len << " ("
        << pct(c.tokens - c.examples, static_cast<int64_t>(windows) * d.seq_len) << " filled)\n";
  };
  side("train", s.train);
  side("val", s.val);
  for (const auto& m : st.bad_line_messages) out << "bad line: " << m << "\n";

  std::vector<const TokenizedExample*> all;
  for (const auto& e : s.train) all.push_back(&e);
  for (const auto& e : s.val) all.push_back(&e);
  if (all.empty()) {
    out << "no examples\n";
    return;
  }
  int64_t max_len = 0;
  for (const auto* e : all) max_len = std::max<int64_t>(max_len, e->tokens.size());
  histogram(all, max_len, out);

  const TokenizedExample& ex = *all.front();
  out << "example " << ex.source << " (" << ex.tokens.size() << " tokens, " << ex.n_targets()
      << " targets; " << (ansi ? "dimmed" : "[bracketed]") << " text is masked, not trained on):\n"
      << render_masked_example(ex, tokenizer, ansi) << "\n";
}

void run_data_inspect(const std::string& recipe, const std::vector<std::string>& overrides,
                      std::ostream& out) {
  RecipeConfig cfg = load_recipe(recipe, overrides);
  check_recipe_paths(cfg);
  const std::string tok_path = recipe_tokenizer_path(cfg);
  std::unique_ptr<Tokenizer> tok = tokenizer_for_model(cfg.model.path, cfg.model.tokenizer);
  const bool ansi = &out == &std::cout && isatty(STDOUT_FILENO);
  write_data_report(cfg, *tok, tok_path, out, ansi);
}

}  // namespace hone
