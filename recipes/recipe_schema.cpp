// The recipe's keys: how each is read (the table), the defaults derived from other keys, and the
// rules on the final values. The defaults themselves live in recipe.h's member initialisers.
#include <algorithm>
#include <limits>

#include "data/instruct_dataset.h"
#include "model/transformer.h"
#include "recipes/recipe_parse.h"

namespace hone::recipe_detail {

template <class Get>
Field number_field(const char* key, Get get) {
  return {key, [get](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
            if (auto v = r.number(n)) get(c) = *v;
          }};
}
template <class Get>
Field int_field(const char* key, Get get) {
  return {key, [get](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
            using T = std::remove_reference_t<decltype(get(c))>;
            if (auto v = r.integer<T>(n)) get(c) = *v;
          }};
}
// max_steps / epochs: null clears the value.
template <class Get>
Field optional_int_field(const char* key, Get get) {
  return {key, [get](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
            if (Reader::is_null(n))
              get(c).reset();
            else if (auto v = r.integer<int64_t>(n))
              get(c) = *v;
          }};
}
template <class Get>
Field bool_field(const char* key, Get get) {
  return {key, [get](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
            if (auto v = r.boolean(n)) get(c) = *v;
          }};
}
template <class Get>
Field string_field(const char* key, Get get) {
  return {key, [get](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
            if (auto v = r.string(n)) get(c) = *v;
          }};
}
template <class Get>
Field path_field(const char* key, Get get) {
  return {key, [get](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
            if (auto v = r.path(n)) get(c) = *v;
          }};
}

const std::vector<Section>& schema() {
  static const std::vector<Section> s = {
      {"model",
       {path_field(
            "path", [](RecipeConfig & c) -> auto& { return c.model.path; }),
        path_field(
            "tokenizer", [](RecipeConfig & c) -> auto& { return c.model.tokenizer; }),
        string_field(
            "dtype", [](RecipeConfig & c) -> auto& { return c.model.dtype; })}},
      {"lora",
       {int_field(
            "rank", [](RecipeConfig & c) -> auto& { return c.lora.rank; }),
        number_field(
            "alpha", [](RecipeConfig & c) -> auto& { return c.lora.alpha; }),
        number_field(
            "dropout", [](RecipeConfig & c) -> auto& { return c.lora.dropout; }),
        {"targets",
         [](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
           if (auto v = r.list<std::string>(n, [&](const YAML::Node& e) {
                 return e.IsScalar() ? std::optional<std::string>(e.Scalar())
                                     : (r.expected("a list of projection names", e),
                                        std::optional<std::string>());
               }))
             c.lora.targets = *v;
         }},
        {"layers",
         [](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
           if (auto v = r.list<int>(n, [&](const YAML::Node& e) { return r.integer<int>(e); }))
             c.lora.layers = *v;
         }},
        bool_field(
            "rslora", [](RecipeConfig & c) -> auto& { return c.lora.rslora; }),
        bool_field(
            "dora", [](RecipeConfig & c) -> auto& { return c.lora.dora; }),
        int_field(
            "seed", [](RecipeConfig & c) -> auto& { return c.lora.seed; })}},
      {"data",
       {path_field(
            "train", [](RecipeConfig & c) -> auto& { return c.data.train; }),
        path_field(
            "val", [](RecipeConfig & c) -> auto& { return c.data.val; }),
        number_field(
            "val_fraction", [](RecipeConfig & c) -> auto& { return c.data.val_fraction; }),
        string_field(
            "format", [](RecipeConfig & c) -> auto& { return c.data.format; }),
        {"fields",
         [](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
           // A mapping logical-field: record-key; null or {} clears it.
           if (Reader::is_null(n)) return c.data.fields.clear();
           if (!n.IsMap())
             return r.expected("a mapping of field names, e.g. {prompt: question}", n);
           std::map<std::string, std::string> m;
           for (const auto& kv : n) {
             if (!kv.first.IsScalar() || !kv.second.IsScalar())
               return r.expected("a mapping of field names to record keys", n);
             m[kv.first.Scalar()] = kv.second.Scalar();
           }
           c.data.fields = m;
         }},
        string_field(
            "train_on", [](RecipeConfig & c) -> auto& { return c.data.train_on; }),
        string_field(
            "chat_template", [](RecipeConfig & c) -> auto& { return c.data.chat_template; }),
        string_field(
            "on_bad_line", [](RecipeConfig & c) -> auto& { return c.data.on_bad_line; }),
        int_field(
            "seq_len", [](RecipeConfig & c) -> auto& { return c.data.seq_len; }),
        bool_field(
            "packing", [](RecipeConfig & c) -> auto& { return c.data.packing; }),
        int_field(
            "shuffle_seed", [](RecipeConfig & c) -> auto& { return c.data.shuffle_seed; }),
        bool_field(
            "add_bos", [](RecipeConfig & c) -> auto& { return c.data.add_bos; }),
        bool_field(
            "add_eos", [](RecipeConfig & c) -> auto& { return c.data.add_eos; })}},
      {"training",
       {int_field(
            "batch_size", [](RecipeConfig & c) -> auto& { return c.training.batch_size; }),
        int_field(
            "grad_accum", [](RecipeConfig & c) -> auto& { return c.training.grad_accum; }),
        optional_int_field(
            "max_steps", [](RecipeConfig & c) -> auto& { return c.training.max_steps; }),
        optional_int_field(
            "epochs", [](RecipeConfig & c) -> auto& { return c.training.epochs; }),
        int_field(
            "seed", [](RecipeConfig & c) -> auto& { return c.training.seed; }),
        int_field(
            "pipeline_stages",
            [](RecipeConfig & c) -> auto& { return c.training.pipeline_stages; }),
        {"grad_clip",
         [](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
           // null / none / off switch clipping off, like 0.
           if (Reader::is_null(n) ||
               (n.IsScalar() && (n.Scalar() == "none" || n.Scalar() == "off")))
             c.training.grad_clip = 0.0;
           else if (auto v = r.number(n))
             c.training.grad_clip = *v;
         }},
        int_field(
            "threads", [](RecipeConfig & c) -> auto& { return c.training.threads; }),
        bool_field(
            "activation_checkpointing",
            [](RecipeConfig & c) -> auto& { return c.training.activation_checkpointing; }),
        {"fused_lm_head",
         [](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
           // A YAML boolean reads as its text: true / false, like "auto", are kept as written.
           if (auto v = r.string(n)) c.training.fused_lm_head = *v;
         }},
        string_field(
            "compute_dtype", [](RecipeConfig & c) -> auto& { return c.training.compute_dtype; })}},
      {"optimizer",
       {string_field(
            "name", [](RecipeConfig & c) -> auto& { return c.optimizer.name; }),
        number_field(
            "lr", [](RecipeConfig & c) -> auto& { return c.optimizer.lr; }),
        {"betas",
         [](RecipeConfig& c, const YAML::Node& n, const Reader& r) {
           if (!n.IsSequence() || n.size() != 2) return r.expected("a list [beta1, beta2]", n);
           auto b1 = r.number(n[0]);
           auto b2 = r.number(n[1]);
           if (b1 && b2) c.optimizer.beta1 = *b1, c.optimizer.beta2 = *b2;
         }},
        number_field(
            "eps", [](RecipeConfig & c) -> auto& { return c.optimizer.eps; }),
        number_field(
            "weight_decay", [](RecipeConfig & c) -> auto& { return c.optimizer.weight_decay; }),
        number_field(
            "momentum", [](RecipeConfig & c) -> auto& { return c.optimizer.momentum; })}},
      {"scheduler",
       {string_field(
            "name", [](RecipeConfig & c) -> auto& { return c.scheduler.name; }),
        int_field(
            "warmup_steps", [](RecipeConfig & c) -> auto& { return c.scheduler.warmup_steps; }),
        number_field(
            "min_lr", [](RecipeConfig & c) -> auto& { return c.scheduler.min_lr; })}},
      {"eval",
       {int_field(
            "every", [](RecipeConfig & c) -> auto& { return c.eval.every; }),
        int_field(
            "max_batches", [](RecipeConfig & c) -> auto& { return c.eval.max_batches; })}},
      {"checkpoint",
       {path_field(
            "dir", [](RecipeConfig & c) -> auto& { return c.checkpoint.dir; }),
        int_field(
            "every", [](RecipeConfig & c) -> auto& { return c.checkpoint.every; }),
        int_field(
            "keep", [](RecipeConfig & c) -> auto& { return c.checkpoint.keep; })}},
      {"output",
       {path_field(
           "dir", [](RecipeConfig & c) -> auto& { return c.output.dir; })}},
      {"logging",
       {int_field(
            "every", [](RecipeConfig & c) -> auto& { return c.logging.every; }),
        path_field(
            "metrics_file", [](RecipeConfig & c) -> auto& { return c.logging.metrics_file; })}},
  };
  return s;
}

const Section* find_section(const std::string& name) {
  for (const auto& s : schema())
    if (s.name == name) return &s;
  return nullptr;
}
const Field* find_field(const Section& s, const std::string& key) {
  for (const auto& f : s.fields)
    if (f.key == key) return &f;
  return nullptr;
}
std::vector<std::string> section_names() {
  std::vector<std::string> v;
  for (const auto& s : schema()) v.push_back(s.name);
  return v;
}
std::vector<std::string> field_names(const Section& s) {
  std::vector<std::string> v;
  for (const auto& f : s.fields) v.push_back(f.key);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Rules on the final values (file and overrides applied), each naming where the value came from.

void one_of(Diagnostics& d, const std::string& key, const std::string& v,
            const std::vector<std::string>& allowed) {
  if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return;
  d.error(key, "must be one of " + join(allowed, ", ") + " (got " + quote(v) + ")" +
                   did_you_mean(v, allowed));
}

void validate(const RecipeConfig& c, Diagnostics& d) {
  auto check = [&](bool ok, const std::string& key, const std::string& msg) {
    if (!ok) d.error(key, msg);
  };
  auto required = [&](const std::string& v, const std::string& key, const std::string& what) {
    if (v.empty())
      d.error(key, d.was_set(key) ? "must not be empty (" + what + ")"
                                  : "required key missing (" + what + ")");
  };
  const std::string& file = d.file();

  required(c.model.path, "model.path", "the base model: HF folder, .safetensors or llama2.c .bin");
  one_of(d, "model.dtype", c.model.dtype, {"f32", "bf16", "f16", "q8_0", "q4_0"});

  const auto& l = c.lora;
  check(l.rank > 0, "lora.rank", "must be > 0 (got " + inum(l.rank) + ")");
  check(l.alpha > 0, "lora.alpha", "must be > 0 (got " + num(l.alpha) + ")");
  check(l.dropout >= 0 && l.dropout < 1, "lora.dropout",
        "must be in [0, 1) (got " + num(l.dropout) + ")");
  check(!l.targets.empty(), "lora.targets", "must name at least one projection");
  std::vector<std::string> kinds = lora_target_kinds();
  kinds.push_back("all-linear");
  std::set<std::string> seen_t;
  for (const auto& t : l.targets) {
    if (t == "all-linear" && l.targets.size() > 1)
      d.error("lora.targets", "\"all-linear\" must be the only entry");
    else if (std::find(kinds.begin(), kinds.end(), t) == kinds.end())
      d.error("lora.targets", "unknown target " + quote(t) + did_you_mean(t, kinds) +
                                  "; expected " + join(lora_target_kinds(), ", ") +
                                  ", or all-linear alone");
    else if (!seen_t.insert(t).second)
      d.error("lora.targets", "lists " + quote(t) + " twice");
  }
  std::set<int> seen_l;
  for (int layer : l.layers) {
    if (layer < 0)
      d.error("lora.layers", "layer indices must be >= 0 (got " + inum(layer) + ")");
    else if (!seen_l.insert(layer).second)
      d.error("lora.layers", "lists layer " + inum(layer) + " twice");
  }

  required(c.data.train, "data.train", "a text file, a folder of .txt/.md files, or a glob");
  check(c.data.val_fraction >= 0 && c.data.val_fraction < 1, "data.val_fraction",
        "must be in [0, 1) (got " + num(c.data.val_fraction) + ")");
  if (!c.data.val.empty() && c.data.val_fraction > 0)
    d.raw(file + ": data: val and val_fraction are both set; set only one");
  one_of(d, "data.format", c.data.format, {"text", "completion", "alpaca", "chat"});
  one_of(d, "data.train_on", c.data.train_on, {"completions", "all"});
  one_of(d, "data.on_bad_line", c.data.on_bad_line, {"error", "skip"});
  if (!c.data.chat_template.empty())
    one_of(d, "data.chat_template", c.data.chat_template,
           {"llama3", "chatml", "llama2", "mistral"});
  if (c.data.format == "text") {
    if (!c.data.fields.empty())
      d.error("data.fields", "only completion, alpaca and chat data have fields (format is text)");
  } else {
    const std::vector<std::string> names = instruct_field_names(c.data.format);
    for (const auto& [logical, key] : c.data.fields) {
      if (std::find(names.begin(), names.end(), logical) == names.end())
        d.error("data.fields", "unknown field " + quote(logical) + " for format " + c.data.format +
                                   did_you_mean(logical, names) + "; expected " +
                                   join(names, ", "));
      else if (key.empty())
        d.error("data.fields", "field " + quote(logical) + " maps to an empty key");
    }
  }
  if (!c.data.chat_template.empty() && c.data.format != "chat")
    d.error("data.chat_template", "only used with format chat (format is " + c.data.format + ")");
  check(c.data.seq_len > 0, "data.seq_len", "must be > 0 (got " + inum(c.data.seq_len) + ")");

  const auto& t = c.training;
  check(t.batch_size > 0, "training.batch_size", "must be > 0 (got " + inum(t.batch_size) + ")");
  check(t.grad_accum > 0, "training.grad_accum", "must be > 0 (got " + inum(t.grad_accum) + ")");
  check(t.pipeline_stages > 0, "training.pipeline_stages",
        "must be > 0 (got " + inum(t.pipeline_stages) + ")");
  if (t.max_steps && t.epochs)
    d.raw(file + ": training: max_steps (" + inum(*t.max_steps) + ") and epochs (" +
          inum(*t.epochs) +
          ") are both set; set only one (clear one with e.g. training.epochs=null)");
  if (t.max_steps)
    check(*t.max_steps > 0, "training.max_steps", "must be > 0 (got " + inum(*t.max_steps) + ")");
  if (t.epochs)
    check(*t.epochs > 0, "training.epochs", "must be > 0 (got " + inum(*t.epochs) + ")");
  check(t.grad_clip >= 0, "training.grad_clip",
        "must be >= 0, 0 or none = off (got " + num(t.grad_clip) + ")");
  check(t.threads >= 0, "training.threads",
        "must be >= 0, 0 = all cores (got " + inum(t.threads) + ")");
  one_of(d, "training.fused_lm_head", t.fused_lm_head, {"auto", "true", "false"});
  one_of(d, "training.compute_dtype", t.compute_dtype, {"auto", "f32", "bf16"});

  const auto& o = c.optimizer;
  one_of(d, "optimizer.name", o.name, {"adamw", "sgd"});
  check(o.lr > 0, "optimizer.lr", "must be > 0 (got " + num(o.lr) + ")");
  check(o.beta1 >= 0 && o.beta1 < 1, "optimizer.betas",
        "beta1 must be in [0, 1) (got " + num(o.beta1) + ")");
  check(o.beta2 >= 0 && o.beta2 < 1, "optimizer.betas",
        "beta2 must be in [0, 1) (got " + num(o.beta2) + ")");
  check(o.eps > 0, "optimizer.eps", "must be > 0 (got " + num(o.eps) + ")");
  check(o.weight_decay >= 0, "optimizer.weight_decay",
        "must be >= 0 (got " + num(o.weight_decay) + ")");
  check(o.momentum >= 0 && o.momentum < 1, "optimizer.momentum",
        "must be in [0, 1) (got " + num(o.momentum) + ")");

  const auto& s = c.scheduler;
  one_of(d, "scheduler.name", s.name, {"constant", "linear", "cosine"});
  check(s.warmup_steps >= 0, "scheduler.warmup_steps",
        "must be >= 0 (got " + inum(s.warmup_steps) + ")");
  // A warmup longer than the run is clamped to it (prepare_training), with a note: the reference
  // recipe's warmup must not refuse its own short example run.
  check(s.min_lr >= 0, "scheduler.min_lr", "must be >= 0 (got " + num(s.min_lr) + ")");
  if (s.min_lr >= 0 && o.lr > 0)
    check(s.min_lr <= o.lr, "scheduler.min_lr",
          "must be <= optimizer.lr (got " + num(s.min_lr) + " > " + num(o.lr) + ")");

  check(c.eval.every >= 0, "eval.every",
        "must be >= 0, 0 = only at the end (got " + inum(c.eval.every) + ")");
  check(c.eval.max_batches >= 0, "eval.max_batches",
        "must be >= 0, 0 = all (got " + inum(c.eval.max_batches) + ")");
  check(c.checkpoint.every >= 0, "checkpoint.every",
        "must be >= 0, 0 = only at the end (got " + inum(c.checkpoint.every) + ")");
  check(c.checkpoint.keep >= 0, "checkpoint.keep",
        "must be >= 0, 0 = keep all (got " + inum(c.checkpoint.keep) + ")");
  required(c.output.dir, "output.dir", "where the trained adapter is written");
  check(c.logging.every > 0, "logging.every", "must be > 0 (got " + inum(c.logging.every) + ")");
}

// Defaults that depend on other keys, filled in only where the recipe left them unset.
void derive_defaults(RecipeConfig& c, const Diagnostics& d) {
  if (!d.was_set("lora.seed")) c.lora.seed = c.training.seed;
  if (!d.was_set("data.shuffle_seed")) c.data.shuffle_seed = c.training.seed;
  if (!c.training.max_steps && !c.training.epochs) c.training.epochs = 1;
  if (!c.output.dir.empty()) {
    if (c.checkpoint.dir.empty())
      c.checkpoint.dir = (fs::path(c.output.dir) / "checkpoints").string();
    if (c.logging.metrics_file.empty())
      c.logging.metrics_file = (fs::path(c.output.dir) / "metrics.jsonl").string();
  }
}

}  // namespace hone::recipe_detail

namespace hone {

int64_t TrainingRecipe::fused_loss_bytes() const {
  if (fused_lm_head == "true") return 0;
  if (fused_lm_head == "false") return std::numeric_limits<int64_t>::max();
  return Transformer::kFusedLossBytes;  // auto
}

}  // namespace hone
