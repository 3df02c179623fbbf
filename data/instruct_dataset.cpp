#include "data/instruct_dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "autograd/error.h"
#include "autograd/json_parse.h"
#include "data/chat_template.h"
#include "data/hf_tokenizer.h"

namespace hone {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxBadLineMessages = 5;

// Drops repeated leading BOS ids: a template's BOS text and the tokenizer's own BOS together.
void drop_double_bos(std::vector<int32_t>& ids, int32_t bos) {
  if (bos < 0) return;
  size_t skip = 0;
  while (skip + 1 < ids.size() && ids[skip] == bos && ids[skip + 1] == bos) ++skip;
  ids.erase(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(skip));
}

void append(TokenizedExample& ex, const std::vector<int32_t>& ids, bool is_target) {
  for (int32_t id : ids) {
    ex.tokens.push_back(id);
    ex.target.push_back(is_target ? 1 : 0);
  }
}

void finish(TokenizedExample& ex, bool train_on_all) {
  if (train_on_all) std::fill(ex.target.begin(), ex.target.end(), uint8_t{1});
  if (!ex.target.empty()) ex.target[0] = 0;  // nothing predicts the first token
}

std::string field_key(const InstructOptions& o, const std::string& logical) {
  auto it = o.fields.find(logical);
  return it != o.fields.end() ? it->second : logical;
}

const char* json_type(const nlohmann::ordered_json& v) {
  return v.type_name();
}

// The string field `logical` of a record; a bad-line Error when absent or not a string
// (`optional` fields read as "" when absent or null).
std::string get_string(const nlohmann::ordered_json& rec, const InstructOptions& o,
                       const std::string& logical, bool optional = false) {
  const std::string key = field_key(o, logical);
  auto it = rec.find(key);
  if (it == rec.end() || (optional && it->is_null())) {
    if (optional) return "";
    std::string msg = "missing field \"" + key + "\"";
    if (key != logical) msg += " (data.fields." + logical + ")";
    throw Error(msg);
  }
  if (!it->is_string())
    throw Error("field \"" + key + "\" must be a string (got " + json_type(*it) + ")");
  return it->get<std::string>();
}

std::string template_token(const Tokenizer& tok, int32_t id) {
  const auto* hf = dynamic_cast<const HfTokenizer*>(&tok);
  if (!hf || id < 0) return "";
  return hf->id_to_token(id);
}

bool is_end_token(const Tokenizer& tok, int32_t id) {
  if (id == tok.eos_id()) return true;
  const auto* hf = dynamic_cast<const HfTokenizer*>(&tok);
  return hf && hf->is_special(id) && id != tok.bos_id();
}

std::string strip(const std::string& s) {
  const char* ws = " \t\r\n";
  size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(ws);
  return s.substr(a, b - a + 1);
}

// A record → its conversation in canonical {"role", "content"} form (extra keys kept).
nlohmann::ordered_json canonical_messages(const nlohmann::ordered_json& rec,
                                          const InstructOptions& o) {
  const std::string mkey = field_key(o, "messages");
  auto it = rec.find(mkey);
  if (it == rec.end()) throw Error("missing field \"" + mkey + "\"");
  if (!it->is_array())
    throw Error("field \"" + mkey + "\" must be an array (got " + json_type(*it) + ")");
  if (it->empty()) throw Error("field \"" + mkey + "\" is an empty conversation");
  const std::string rkey = field_key(o, "role"), ckey = field_key(o, "content");
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& m = (*it)[i];
    const std::string where = mkey + "[" + std::to_string(i) + "]";
    if (!m.is_object()) throw Error(where + " must be an object (got " + json_type(m) + ")");
    auto r = m.find(rkey);
    auto c = m.find(ckey);
    if (r == m.end()) throw Error(where + ": missing field \"" + rkey + "\"");
    if (c == m.end()) throw Error(where + ": missing field \"" + ckey + "\"");
    if (!r->is_string())
      throw Error(where + ": field \"" + rkey + "\" must be a string (got " + json_type(*r) + ")");
    if (!c->is_string())
      throw Error(where + ": field \"" + ckey + "\" must be a string (got " + json_type(*c) + ")");
    const std::string role = r->get<std::string>();
    if (role != "system" && role != "user" && role != "assistant")
      throw Error(where + ": unknown role \"" + role + "\" (expected system, user or assistant)");
    nlohmann::ordered_json msg = {{"role", role}, {"content", c->get<std::string>()}};
    for (auto kv = m.begin(); kv != m.end(); ++kv)
      if (kv.key() != rkey && kv.key() != ckey && !msg.contains(kv.key())) msg[kv.key()] = *kv;
    out.push_back(std::move(msg));
  }
  return out;
}

}  // namespace

std::string alpaca_prompt(const std::string& instruction, const std::string& input) {
  if (input.empty()) {
    return "Below is an instruction that describes a task. Write a response that appropriately "
           "completes the request.\n\n### Instruction:\n" +
           instruction + "\n\n### Response:\n";
  }
  return "Below is an instruction that describes a task, paired with an input that provides "
         "further context. Write a response that appropriately completes the request.\n\n"
         "### Instruction:\n" +
         instruction + "\n\n### Input:\n" + input + "\n\n### Response:\n";
}

std::vector<std::string> instruct_field_names(const std::string& format) {
  if (format == "completion") return {"prompt", "completion"};
  if (format == "alpaca") return {"instruction", "input", "output"};
  if (format == "chat") return {"messages", "role", "content"};
  return {};
}

std::vector<std::string> check_instruct_fields(const std::string& format,
                                               const std::map<std::string, std::string>& fields) {
  std::vector<std::string> problems;
  const std::vector<std::string> names = instruct_field_names(format);
  for (const auto& [logical, key] : fields) {
    if (std::find(names.begin(), names.end(), logical) == names.end()) {
      std::string known;
      for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
      problems.push_back("unknown field \"" + logical + "\" for format " + format +
                         (names.empty() ? " (only completion, alpaca and chat have fields)"
                                        : " (expected " + known + ")"));
    } else if (key.empty()) {
      problems.push_back("field \"" + logical + "\" maps to an empty key");
    }
  }
  return problems;
}

int64_t TokenizedExample::n_targets() const {
  return std::count(target.begin(), target.end(), uint8_t{1});
}

void InstructStats::add(const InstructStats& o) {
  records += o.records;
  bad_lines += o.bad_lines;
  truncated += o.truncated;
  no_targets += o.no_targets;
  tokens += o.tokens;
  target_tokens += o.target_tokens;
  for (const auto& m : o.bad_line_messages)
    if (bad_line_messages.size() < kMaxBadLineMessages) bad_line_messages.push_back(m);
}

TokenizedExample tokenize_completion(const std::string& prompt, const std::string& completion,
                                     const Tokenizer& tokenizer, const InstructOptions& options) {
  TokenizedExample ex;
  std::vector<int32_t> p = tokenizer.encode(prompt, options.add_bos, false);
  drop_double_bos(p, tokenizer.bos_id());
  std::vector<int32_t> c = tokenizer.encode(completion, false, false);
  if (options.add_eos && tokenizer.eos_id() >= 0 && (c.empty() || c.back() != tokenizer.eos_id()))
    c.push_back(tokenizer.eos_id());
  append(ex, p, false);
  append(ex, c, true);
  finish(ex, options.train_on_all);
  return ex;
}

TokenizedExample tokenize_chat(const nlohmann::ordered_json& messages, const Tokenizer& tokenizer,
                               const InstructOptions& options) {
  if (options.chat_template.empty()) throw Error("chat data needs a chat template");
  const std::string bos_s = template_token(tokenizer, tokenizer.bos_id());
  const std::string eos_s = template_token(tokenizer, tokenizer.eos_id());
  const RenderedChat chat =
      options.train_on_all
          ? RenderedChat{render_chat_json(options.chat_template, messages, false, bos_s, eos_s), {}}
          : render_chat_spans(options.chat_template, messages, bos_s, eos_s);
  const std::string& text = chat.text;

  // The sequence is the tokenization of the whole text, after the BOS add_bos asks for unless
  // the template's text already begins with it.
  const std::vector<int32_t> ids = tokenizer.encode(text, false, false);
  std::vector<int32_t> lead = tokenizer.encode("", options.add_bos, false);
  drop_double_bos(lead, tokenizer.bos_id());
  if (lead.size() <= ids.size() && std::equal(lead.begin(), lead.end(), ids.begin())) lead.clear();

  // The number of tokens of `ids` that the text before byte `at` tokenizes to on its own: a turn
  // whose prompt tokenizes alone as it does inside the conversation is trained on exactly the
  // ids the model produces after that prompt. Where a token crosses `at` (the prompt alone
  // tokenizes differently), the tokens before it.
  auto tokens_before = [&](size_t at, size_t* crossing) {
    const std::vector<int32_t> p = tokenizer.encode(text.substr(0, at), false, false);
    size_t n = 0;
    while (n < p.size() && n < ids.size() && p[n] == ids[n]) ++n;
    if (crossing) *crossing = n < p.size() ? 1 : 0;
    return n;
  };
  auto is_blank = [&](size_t i) {
    const std::string piece = tokenizer.decode_token(i > 0 ? ids[i - 1] : -1, ids[i]);
    return !piece.empty() && strip(piece).empty();
  };
  struct Turn {
    size_t begin, content_end, end;  // token indices into ids
    bool closed;                     // ends in the template's end-of-turn token
  };
  std::vector<Turn> turns;
  size_t prev_end = 0;
  for (const AssistantSpan& s : chat.assistant) {
    Turn t{};
    t.begin = tokens_before(s.begin, nullptr);
    size_t crossing = 0;  // a token crossing the content's end holds content: it is trained
    t.content_end = tokens_before(s.content_end, &crossing) + crossing;
    t.content_end = std::max(t.content_end, t.begin);
    // The template's end-of-turn token right after the content (past whitespace-only tokens, as
    // Llama 2's " </s>"), e.g. <|eot_id|>, <|im_end|>: the model must learn to produce it.
    size_t e = t.content_end;
    while (e < ids.size() && !is_end_token(tokenizer, ids[e]) && is_blank(e)) ++e;
    t.closed = e < ids.size() && is_end_token(tokenizer, ids[e]);
    t.end = t.closed ? e + 1 : t.content_end;
    if (t.begin < prev_end)
      throw Error("chat template: the span of message " + std::to_string(s.message) +
                  " (assistant) overlaps the previous assistant turn's tokens");
    prev_end = t.end;
    turns.push_back(t);
  }

  TokenizedExample ex;
  ex.tokens.reserve(lead.size() + ids.size() + turns.size());
  append(ex, lead, false);
  size_t next = 0;  // the first turn not yet finished
  for (size_t i = 0; i <= ids.size(); ++i) {
    // A turn the template closes with no special token: EOS, so the model learns to stop (the
    // one place the sequence departs from the text's tokenization).
    while (next < turns.size() && turns[next].end == i) {
      if (!turns[next].closed && options.add_eos && tokenizer.eos_id() >= 0)
        append(ex, {tokenizer.eos_id()}, true);
      ++next;
    }
    if (i == ids.size()) break;
    const bool in_turn = next < turns.size() && i >= turns[next].begin;
    append(ex, {ids[i]}, in_turn);
  }
  finish(ex, options.train_on_all);
  return ex;
}

InstructFile read_instruct_file(const std::string& path, const Tokenizer& tokenizer,
                                const InstructOptions& options) {
  const std::string& fmt = options.format;
  if (fmt != "completion" && fmt != "alpaca" && fmt != "chat")
    throw Error(path + ": unknown instruction data format \"" + fmt +
                "\" (expected completion, alpaca or chat)");
  if (options.seq_len <= 0)
    throw Error(path + ": seq_len must be > 0 (got " + std::to_string(options.seq_len) + ")");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open data file");
  InstructFile out;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(lineno);
    TokenizedExample ex;
    try {
      const auto rec = parse_json<nlohmann::ordered_json>(line, "");
      if (!rec.is_object())
        throw Error(std::string("expected a JSON object, got ") + json_type(rec));
      if (fmt == "completion") {
        // Fields read in order, so the first missing one is the one reported.
        const std::string prompt = get_string(rec, options, "prompt");
        const std::string completion = get_string(rec, options, "completion");
        ex = tokenize_completion(prompt, completion, tokenizer, options);
      } else if (fmt == "alpaca") {
        const std::string instruction = get_string(rec, options, "instruction");
        const std::string input = get_string(rec, options, "input", true);
        const std::string output = get_string(rec, options, "output");
        ex = tokenize_completion(alpaca_prompt(instruction, input), output, tokenizer, options);
      } else {
        const nlohmann::ordered_json messages = canonical_messages(rec, options);
        if (!options.train_on_all &&
            std::none_of(messages.begin(), messages.end(),
                         [](const auto& m) { return m["role"] == "assistant"; }))
          throw Error("no assistant message to train on");
        ex = tokenize_chat(messages, tokenizer, options);
      }
    } catch (const Error& e) {
      const std::string msg = where + ": " + e.what();
      if (!options.skip_bad_lines) throw Error(msg);
      ++out.stats.bad_lines;
      if (out.stats.bad_line_messages.size() < kMaxBadLineMessages)
        out.stats.bad_line_messages.push_back(msg);
      continue;
    }
    ex.source = where;
    ++out.stats.records;
    const auto limit = static_cast<size_t>(options.seq_len + 1);
    if (ex.tokens.size() > limit) {
      ex.tokens.resize(limit);
      ex.target.resize(limit);
      ++out.stats.truncated;
    }
    const int64_t n_targets = ex.n_targets();
    if (n_targets == 0) {
      ++out.stats.no_targets;
      continue;
    }
    out.stats.tokens += static_cast<int64_t>(ex.tokens.size());
    out.stats.target_tokens += n_targets;
    out.examples.push_back(std::move(ex));
  }
  if (in.bad()) throw Error(path + ": read error");
  return out;
}

std::vector<Example> pack_instruct(const std::vector<TokenizedExample>& examples, int64_t seq_len,
                                   int32_t pad_id) {
  if (seq_len <= 0) throw Error("pack: seq_len must be > 0 (got " + std::to_string(seq_len) + ")");
  const auto T = static_cast<size_t>(seq_len);
  std::vector<Example> out;
  Example cur;
  size_t used = 0;
  auto flush = [&] {
    if (used == 0) return;
    for (size_t i = used; i < T; ++i) {
      cur.ids[i] = pad_id;
      cur.targets[i] = kIgnoreIndex;
      cur.segment_start[i] = static_cast<int32_t>(used);
    }
    out.push_back(std::move(cur));
    used = 0;
  };
  auto fresh = [&] {
    cur = Example{};
    cur.ids.assign(T, pad_id);
    cur.targets.assign(T, kIgnoreIndex);
    cur.segment_start.assign(T, 0);
  };
  for (const TokenizedExample& ex : examples) {
    const size_t L = std::min(ex.tokens.size(), T + 1);
    if (L < 2) continue;
    const size_t need = L - 1;
    if (used + need > T) flush();
    if (used == 0) fresh();
    for (size_t i = 0; i < need; ++i) {
      cur.ids[used + i] = ex.tokens[i];
      cur.targets[used + i] = ex.target[i + 1] ? ex.tokens[i + 1] : kIgnoreIndex;
      cur.segment_start[used + i] = static_cast<int32_t>(used);
    }
    used += need;
  }
  flush();
  return out;
}

std::vector<Example> pad_instruct(const std::vector<TokenizedExample>& examples, int64_t seq_len,
                                  int32_t pad_id) {
  if (seq_len <= 0) throw Error("pad: seq_len must be > 0 (got " + std::to_string(seq_len) + ")");
  const auto T = static_cast<size_t>(seq_len);
  std::vector<Example> out;
  for (const TokenizedExample& ex : examples) {
    const size_t L = std::min(ex.tokens.size(), T + 1);
    if (L < 2) continue;
    Example e;
    e.ids.assign(T, pad_id);
    e.targets.assign(T, kIgnoreIndex);
    for (size_t i = 0; i + 1 < L; ++i) {
      e.ids[i] = ex.tokens[i];
      if (ex.target[i + 1]) e.targets[i] = ex.tokens[i + 1];
    }
    out.push_back(std::move(e));
  }
  return out;
}

int32_t pad_id_of(const Tokenizer& tokenizer) {
  if (const auto* hf = dynamic_cast<const HfTokenizer*>(&tokenizer); hf && hf->pad_id() >= 0)
    return hf->pad_id();
  return tokenizer.eos_id() >= 0 ? tokenizer.eos_id() : 0;
}

std::string resolve_chat_template(const std::string& name, const std::string& tokenizer_path) {
  if (!name.empty()) return builtin_chat_template(name);
  std::error_code ec;
  fs::path dir = fs::is_directory(tokenizer_path, ec) ? fs::path(tokenizer_path)
                                                      : fs::path(tokenizer_path).parent_path();
  const fs::path cfg = dir / "tokenizer_config.json";
  const std::string hint =
      "; set data.chat_template to a built-in template: llama3, chatml, llama2 or mistral";
  if (!fs::exists(cfg, ec))
    throw Error(tokenizer_path +
                ": no tokenizer_config.json beside the tokenizer, so no chat "
                "template" +
                hint);
  try {
    std::string t = chat_template_from_config(cfg.string());
    check_chat_template(t, cfg.string() + ": chat_template");
    return t;
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + hint);
  }
}

InstructSplit read_instruct_split(const InstructDataOptions& options, const Tokenizer& tokenizer) {
  if (options.train.empty()) throw Error("instruction data: no train file given");
  if (!options.val.empty() && options.val_fraction != 0.0)
    throw Error("instruction data: give either a val file or val_fraction, not both");
  InstructSplit out;
  InstructFile train = read_instruct_file(options.train, tokenizer, options.instruct);
  out.stats = train.stats;
  if (!options.val.empty()) {
    InstructFile val = read_instruct_file(options.val, tokenizer, options.instruct);
    out.stats.add(val.stats);
    out.train = std::move(train.examples);
    out.val = std::move(val.examples);
    return out;
  }
  const int64_t n = static_cast<int64_t>(train.examples.size());
  if (options.val_fraction > 0 && n < 2)
    throw Error(options.train + ": val_fraction needs at least 2 examples (got " +
                std::to_string(n) + ")");
  const std::vector<bool> mask = val_mask(n, options.val_fraction);
  for (size_t i = 0; i < train.examples.size(); ++i)
    (mask[i] ? out.val : out.train).push_back(std::move(train.examples[i]));
  return out;
}

TrainValSplit load_instruct_data(const InstructDataOptions& options, const Tokenizer& tokenizer,
                                 InstructStats* stats) {
  InstructSplit split = read_instruct_split(options, tokenizer);
  if (stats) *stats = split.stats;
  const int64_t T = options.instruct.seq_len;
  const int32_t pad = pad_id_of(tokenizer);
  auto windows = [&](const std::vector<TokenizedExample>& v) {
    return options.packing ? pack_instruct(v, T, pad) : pad_instruct(v, T, pad);
  };
  TrainValSplit out;
  out.train = windows(split.train);
  out.val = windows(split.val);
  if (out.train.empty()) {
    std::string why = " (" + std::to_string(split.stats.bad_lines) + " bad lines skipped, " +
                      std::to_string(split.stats.no_targets) + " records with no target left)";
    throw Error(options.train + ": no training examples" + why);
  }
  if (!options.val.empty() && out.val.empty())
    throw Error(options.val + ": no validation examples");
  return out;
}

}  // namespace hone
