#include "data/chat_template.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string_view>
#include <tuple>
#include <utility>

#include "autograd/error.h"
#include "autograd/json_parse.h"
#include "data/jinja/template.h"

namespace hone {

namespace {

// Built-in templates, written from each format's documentation. Each line ends in a tag whose
// successor strips with `{%-`/`{{-`, so the layout here adds no whitespace.

// Llama 3 instruct: <|begin_of_text|><|start_header_id|>ROLE<|end_header_id|>\n\nTEXT<|eot_id|>...
// Content trimmed as Meta's template does; the assistant header only when asked for.
const char* kLlama3 = R"({%- for message in messages %}
{%- if loop.first %}{{- bos_token }}{%- endif %}
{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %})";

// ChatML (Qwen, many others): <|im_start|>ROLE\nTEXT<|im_end|>\n ...
const char* kChatml = R"({%- for message in messages %}
{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
{%- endif %})";

// Llama 2 chat: <s>[INST] <<SYS>>\nSYSTEM\n<</SYS>>\n\nUSER [/INST] ANSWER </s><s>[INST] USER
// [/INST]
const char* kLlama2 = R"({%- if messages and messages[0]['role'] == 'system' %}
{%- set system = messages[0]['content'] %}
{%- set turns = messages[1:] %}
{%- else %}
{%- set system = none %}
{%- set turns = messages %}
{%- endif %}
{%- for message in turns %}
{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
{{- raise_exception('llama2 chat template: roles must alternate user/assistant after an optional system message') }}
{%- endif %}
{%- if message['role'] == 'user' %}
{%- set content = message['content'] | trim %}
{%- if loop.first and system is not none %}
{%- set content = '<<SYS>>\n' + system | trim + '\n<</SYS>>\n\n' + content %}
{%- endif %}
{{- bos_token + '[INST] ' + content + ' [/INST]' }}
{%- else %}
{{- ' ' + message['content'] | trim + ' ' + eos_token }}
{%- endif %}
{%- endfor %})";

// Mistral instruct: <s>[INST] USER [/INST] ANSWER</s>[INST] USER [/INST]; a system message is
// put before the first user message, separated by a blank line.
const char* kMistral = R"({%- if messages and messages[0]['role'] == 'system' %}
{%- set system = messages[0]['content'] %}
{%- set turns = messages[1:] %}
{%- else %}
{%- set system = none %}
{%- set turns = messages %}
{%- endif %}
{{- bos_token }}
{%- for message in turns %}
{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
{{- raise_exception('mistral chat template: roles must alternate user/assistant after an optional system message') }}
{%- endif %}
{%- if message['role'] == 'user' %}
{%- if loop.first and system is not none %}
{{- '[INST] ' + system + '\n\n' + message['content'] + ' [/INST]' }}
{%- else %}
{{- '[INST] ' + message['content'] + ' [/INST]' }}
{%- endif %}
{%- else %}
{{- ' ' + message['content'] + eos_token }}
{%- endif %}
{%- endfor %})";

// Parsing a long template per conversation would dominate dataset rendering; keep the last one.
std::shared_ptr<const jinja::Template> compiled(const std::string& text) {
  thread_local std::string last_text;
  thread_local std::shared_ptr<const jinja::Template> last;
  if (!last || last_text != text) {
    last = std::make_shared<const jinja::Template>(text, jinja::Options{}, "chat_template");
    last_text = text;
  }
  return last;
}

}  // namespace

std::string render_chat_json(const std::string& template_text,
                             const nlohmann::ordered_json& messages, bool add_generation_prompt,
                             const std::string& bos_token, const std::string& eos_token,
                             const nlohmann::ordered_json& extra) {
  if (!messages.is_array()) throw Error("render_chat: messages must be a JSON array");
  if (!extra.is_null() && !extra.is_object())
    throw Error("render_chat: extra must be a JSON object");
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();
  vars["messages"] = messages;
  vars["add_generation_prompt"] = add_generation_prompt;
  vars["bos_token"] = bos_token;
  vars["eos_token"] = eos_token;
  if (extra.is_object())
    for (const auto& [k, v] : extra.items()) vars[k] = v;
  return compiled(template_text)->render(vars);
}

std::string render_chat(const std::string& template_text, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt, const std::string& bos_token,
                        const std::string& eos_token, const nlohmann::ordered_json& extra) {
  auto list = nlohmann::ordered_json::array();
  for (const auto& m : messages) {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    j["role"] = m.role;
    j["content"] = m.content;
    if (m.extra.is_object())
      for (const auto& [k, v] : m.extra.items()) j[k] = v;
    list.push_back(std::move(j));
  }
  return render_chat_json(template_text, list, add_generation_prompt, bos_token, eos_token, extra);
}

namespace {

size_t common_prefix(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

size_t common_suffix(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[a.size() - 1 - i] == b[b.size() - 1 - i]) ++i;
  return i;
}

struct SpanFinder {
  const std::string& tmpl;
  const nlohmann::ordered_json& messages;
  const std::string& bos;
  const std::string& eos;
  const nlohmann::ordered_json& extra;
  const std::string& text;  // the whole conversation, rendered

  std::string render(const nlohmann::ordered_json& msgs, bool gen) const {
    return render_chat_json(tmpl, msgs, gen, bos, eos, extra);
  }

  nlohmann::ordered_json head(size_t k) const {
    nlohmann::ordered_json h = nlohmann::ordered_json::array();
    for (size_t j = 0; j < k; ++j) h.push_back(messages[j]);
    return h;
  }

  // What add_generation_prompt appends after `msgs` ("" when it does not simply append).
  std::string generation_suffix(const nlohmann::ordered_json& msgs) const {
    const std::string with = render(msgs, true), without = render(msgs, false);
    return with.starts_with(without) ? with.substr(without.size()) : std::string();
  }

  // [content_begin, content_end) of message k: where the text changes when the content is
  // replaced by `sentinel`, which holds a byte the text lacks, so the change ends exactly at the
  // content's last byte. A reasoning-carrying content (Qwen3) changes the text from its reasoning
  // on; a trimmed one only where the trimmed text is.
  std::pair<size_t, size_t> content_slot(size_t k, const std::string& sentinel,
                                         const std::string& what) const {
    nlohmann::ordered_json marked = messages;
    marked[k]["content"] = sentinel;
    const std::string other = render(marked, false);
    const size_t pre = common_prefix(text, other);
    const size_t suf =
        std::min(common_suffix(text, other), std::min(text.size(), other.size()) - pre);
    const size_t other_end = other.size() - suf;
    if (other_end < pre + sentinel.size() ||
        other.compare(other_end - sentinel.size(), sentinel.size(), sentinel) != 0)
      throw Error("chat template: the content of " + what +
                  " is not rendered as given (the template rewrites it), so its span cannot be "
                  "located");
    return {pre, text.size() - suf};
  }

  // Where the model starts producing message k: the end of its prompt render(messages[:k],
  // true) when the conversation's text begins with that prompt; otherwise (the template renders
  // earlier turns differently once later ones exist) the position in [lo, content_begin] whose
  // preceding text shares the longest tail with the prompt (the latest such position).
  size_t turn_start(size_t k, size_t lo, size_t content_begin, const std::string& what) const {
    nlohmann::ordered_json h = head(k);
    std::string prompt;
    bool rendered = true;
    try {
      prompt = render(h, true);
    } catch (const Error&) {
      rendered = false;  // e.g. Qwen3 reads messages[0].role, which raises on [] as in jinja2
    }
    if (rendered && text.starts_with(prompt) && prompt.size() >= lo &&
        prompt.size() <= content_begin)
      return prompt.size();
    std::string tail;
    size_t need = 1;
    if (rendered) {
      tail = prompt;
      need = std::max<size_t>(1, generation_suffix(h).size());
    } else {
      // Without a prompt for this turn, the header the template appends after it must match.
      h.push_back(messages[k]);
      tail = generation_suffix(h);
      need = tail.size();
    }
    size_t best = 0, at = 0;
    for (size_t x = content_begin + 1; x-- > lo;) {
      const size_t n = common_suffix(std::string_view(text).substr(0, x), tail);
      if (n > best) {
        best = n;
        at = x;
      }
    }
    if (need == 0 || best < need)
      throw Error("chat template: cannot find where " + what +
                  " starts in the rendered conversation (its prompt does not appear before it)");
    return at;
  }
};

}  // namespace

RenderedChat render_chat_spans(const std::string& template_text,
                               const nlohmann::ordered_json& messages, const std::string& bos_token,
                               const std::string& eos_token, const nlohmann::ordered_json& extra) {
  RenderedChat out;
  out.text = render_chat_json(template_text, messages, false, bos_token, eos_token, extra);
  const SpanFinder finder{template_text, messages, bos_token, eos_token, extra, out.text};
  // The sentinel's delimiter must occur nowhere in the text (see content_slot) and survive
  // trim (Python counts U+001C..U+001F as whitespace, so they would not).
  char delim = 0;
  for (char c : {'\x01', '\x02', '\x03', '\x04'})
    if (out.text.find(c) == std::string::npos) {
      delim = c;
      break;
    }
  size_t lo = 0;  // no span starts before the previous content's end
  for (size_t k = 0; k < messages.size(); ++k) {
    const auto& m = messages[k];
    if (!m.is_object() || !m.contains("role") || m["role"] != "assistant") continue;
    const std::string what = "message " + std::to_string(k) + " (assistant)";
    if (delim == 0)
      throw Error(
          "chat template: the conversation holds all of the control characters "
          "U+0001..U+0004, one of which hone needs as a marker to locate " +
          what);
    const std::string sentinel =
        std::string(1, delim) + "hone-content-" + std::to_string(k) + std::string(1, delim);
    AssistantSpan span;
    span.message = k;
    std::tie(span.content_begin, span.content_end) = finder.content_slot(k, sentinel, what);
    if (span.content_begin < lo)
      throw Error("chat template: the rendering of earlier messages depends on the content of " +
                  what + ", so its span cannot be located");
    span.begin = finder.turn_start(k, lo, span.content_begin, what);
    out.assistant.push_back(span);
    lo = span.content_end;
  }
  return out;
}

const std::string& builtin_chat_template(const std::string& name) {
  static const std::map<std::string, std::string> templates = {
      {"llama3", kLlama3}, {"chatml", kChatml}, {"llama2", kLlama2}, {"mistral", kMistral}};
  auto it = templates.find(name);
  if (it == templates.end())
    throw Error("chat template '" + name +
                "': unknown built-in template (known: chatml, llama2, llama3, mistral)");
  return it->second;
}

void check_chat_template(const std::string& template_text, const std::string& origin) {
  jinja::Template(template_text, jinja::Options{}, origin);
}

std::string chat_template_from_config(const std::string& tokenizer_config_path) {
  const auto cfg = parse_json_file<nlohmann::json>(tokenizer_config_path);
  if (!cfg.is_object()) throw Error(tokenizer_config_path + ": expected a JSON object");
  auto it = cfg.find("chat_template");
  if (it == cfg.end() || it->is_null()) throw Error(tokenizer_config_path + ": no chat_template");
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    for (const auto& t : *it)
      if (t.is_object() && t.value("name", "") == "default" && t.contains("template") &&
          t["template"].is_string())
        return t["template"].get<std::string>();
    throw Error(tokenizer_config_path + ": chat_template: list has no template named \"default\"");
  }
  throw Error(tokenizer_config_path +
              ": chat_template: expected a string or a list of {name, template}");
}

}  // namespace hone
