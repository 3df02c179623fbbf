#include "data/chat_template.h"

#include <map>
#include <memory>
#include <sstream>

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
