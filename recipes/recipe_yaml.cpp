// The resolved recipe written back as YAML (printed at start, saved in the run folder), equality,
// and the existence check of the inputs a recipe names.
#include <glob.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <sstream>

#include "recipes/recipe_parse.h"

namespace hone {
namespace {

using namespace recipe_detail;

// ---------------------------------------------------------------------------------------------
// Writing YAML back: strings plain or double-quoted and escaped, numbers in shortest exact form.

std::string yq(const std::string& s) {
  // Names like adamw or q_proj stay plain (easier to read); anything YAML could read as another
  // type or as syntax is double-quoted.
  static const std::set<std::string> special = {"true", "false", "yes", "no", "on",
                                                "off",  "null",  "y",   "n",  "~"};
  std::string lower = s;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  bool plain = !s.empty() && std::isalpha(static_cast<unsigned char>(s[0])) &&
               !special.count(lower) && std::all_of(s.begin(), s.end(), [](unsigned char ch) {
                 return std::isalnum(ch) || ch == '_' || ch == '-';
               });
  if (plain) return s;
  std::string out = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out + "\"";
}

}  // namespace

bool RecipeConfig::operator==(const RecipeConfig& o) const {
  const auto& a = lora;
  const auto& b = o.lora;
  return model == o.model && a.rank == b.rank && a.alpha == b.alpha && a.dropout == b.dropout &&
         a.rslora == b.rslora && a.dora == b.dora && a.targets == b.targets &&
         a.layers == b.layers && a.seed == b.seed && data == o.data && training == o.training &&
         optimizer == o.optimizer && scheduler == o.scheduler && eval == o.eval &&
         checkpoint == o.checkpoint && output == o.output && logging == o.logging;
}

void check_recipe_paths(const RecipeConfig& c) {
  std::vector<std::string> problems;
  const std::string src = c.source.empty() ? "recipe" : c.source;
  auto exists = [&](const std::string& key, const std::string& p) {
    if (p.empty()) return;
    std::error_code ec;
    if (p.find_first_of("*?[") != std::string::npos) {
      glob_t g{};
      int rc = ::glob(p.c_str(), 0, nullptr, &g);
      size_t n = rc == 0 ? g.gl_pathc : 0;
      ::globfree(&g);
      if (n == 0) problems.push_back(src + ": " + key + ": no file matches " + p);
    } else if (!fs::exists(p, ec)) {
      problems.push_back(src + ": " + key + ": no such file or folder: " + p);
    }
  };
  exists("model.path", c.model.path);
  exists("model.tokenizer", c.model.tokenizer);
  exists("data.train", c.data.train);
  exists("data.val", c.data.val);
  if (!problems.empty()) throw Error(join(problems, "\n"));
}

std::string to_yaml(const RecipeConfig& c) {
  std::ostringstream y;
  auto list = [](const auto& v, auto fmt) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + fmt(v[i]);
    return s + "]";
  };
  auto b = [](bool v) { return v ? "true" : "false"; };
  auto fields = [](const std::map<std::string, std::string>& m) {
    std::string s;
    for (const auto& [k, v] : m) s += (s.empty() ? "" : ", ") + yq(k) + ": " + yq(v);
    return s;
  };
  auto opt = [](const std::optional<int64_t>& v) { return v ? inum(*v) : std::string("null"); };
  y << "# hone recipe, resolved: every key with its value, defaults included\n";
  y << "model:\n"
    << "  path: " << yq(c.model.path) << "\n"
    << "  tokenizer: " << yq(c.model.tokenizer) << "\n"
    << "  dtype: " << yq(c.model.dtype) << "\n";
  y << "lora:\n"
    << "  rank: " << c.lora.rank << "\n"
    << "  alpha: " << num(c.lora.alpha) << "\n"
    << "  dropout: " << num(c.lora.dropout) << "\n"
    << "  targets: " << list(c.lora.targets, yq) << "\n"
    << "  layers: " << list(c.lora.layers, [](int i) { return inum(i); }) << "\n"
    << "  rslora: " << b(c.lora.rslora) << "\n"
    << "  dora: " << b(c.lora.dora) << "\n"
    << "  seed: " << c.lora.seed << "\n";
  y << "data:\n"
    << "  train: " << yq(c.data.train) << "\n"
    << "  val: " << yq(c.data.val) << "\n"
    << "  val_fraction: " << num(c.data.val_fraction) << "\n"
    << "  format: " << yq(c.data.format) << "\n"
    << "  fields: {" << fields(c.data.fields) << "}\n"
    << "  train_on: " << yq(c.data.train_on) << "\n"
    << "  chat_template: " << yq(c.data.chat_template) << "\n"
    << "  on_bad_line: " << yq(c.data.on_bad_line) << "\n"
    << "  seq_len: " << c.data.seq_len << "\n"
    << "  packing: " << b(c.data.packing) << "\n"
    << "  shuffle_seed: " << c.data.shuffle_seed << "\n"
    << "  add_bos: " << b(c.data.add_bos) << "\n"
    << "  add_eos: " << b(c.data.add_eos) << "\n";
  y << "training:\n"
    << "  batch_size: " << c.training.batch_size << "\n"
    << "  grad_accum: " << c.training.grad_accum << "\n"
    << "  max_steps: " << opt(c.training.max_steps) << "\n"
    << "  epochs: " << opt(c.training.epochs) << "\n"
    << "  seed: " << c.training.seed << "\n"
    << "  grad_clip: " << num(c.training.grad_clip) << "\n"
    << "  threads: " << c.training.threads << "\n"
    << "  pipeline_stages: " << c.training.pipeline_stages << "\n"
    << "  activation_checkpointing: " << b(c.training.activation_checkpointing) << "\n"
    << "  fused_lm_head: " << yq(c.training.fused_lm_head) << "\n"
    << "  compute_dtype: " << yq(c.training.compute_dtype) << "\n";
  y << "optimizer:\n"
    << "  name: " << yq(c.optimizer.name) << "\n"
    << "  lr: " << num(c.optimizer.lr) << "\n"
    << "  betas: [" << num(c.optimizer.beta1) << ", " << num(c.optimizer.beta2) << "]\n"
    << "  eps: " << num(c.optimizer.eps) << "\n"
    << "  weight_decay: " << num(c.optimizer.weight_decay) << "\n"
    << "  momentum: " << num(c.optimizer.momentum) << "\n";
  y << "scheduler:\n"
    << "  name: " << yq(c.scheduler.name) << "\n"
    << "  warmup_steps: " << c.scheduler.warmup_steps << "\n"
    << "  min_lr: " << num(c.scheduler.min_lr) << "\n";
  y << "eval:\n"
    << "  every: " << c.eval.every << "\n"
    << "  max_batches: " << c.eval.max_batches << "\n";
  y << "checkpoint:\n"
    << "  dir: " << yq(c.checkpoint.dir) << "\n"
    << "  every: " << c.checkpoint.every << "\n"
    << "  keep: " << c.checkpoint.keep << "\n";
  y << "output:\n"
    << "  dir: " << yq(c.output.dir) << "\n";
  y << "logging:\n"
    << "  every: " << c.logging.every << "\n"
    << "  metrics_file: " << yq(c.logging.metrics_file) << "\n";
  return y.str();
}

}  // namespace hone
