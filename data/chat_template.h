// Chat templates: render a conversation with a model's own Jinja `chat_template` (from
// tokenizer_config.json) exactly as Hugging Face transformers does, or with a built-in template
// for models that ship none.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace hone {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "tool", ...
  std::string content;
  // Further fields the template may read (reasoning_content, tool_calls, name, ...), added to
  // the message after role and content; a key named "role" or "content" here replaces them.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
};

// Renders `template_text` with the variables transformers' apply_chat_template passes:
// messages, add_generation_prompt, bos_token, eos_token, plus every key of `extra` (tools,
// enable_thinking, documents, ...; a plain nlohmann::json converts implicitly, but only an
// ordered_json keeps the key order that `tojson` shows). Throws hone::Error
// "chat_template:line:col: ..." on template errors, including raise_exception().
std::string render_chat(const std::string& template_text, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt, const std::string& bos_token,
                        const std::string& eos_token,
                        const nlohmann::ordered_json& extra = nlohmann::ordered_json::object());

// The same with the messages as JSON (an array of objects), for data read from chat JSONL.
std::string render_chat_json(
    const std::string& template_text, const nlohmann::ordered_json& messages,
    bool add_generation_prompt, const std::string& bos_token, const std::string& eos_token,
    const nlohmann::ordered_json& extra = nlohmann::ordered_json::object());

// Jinja source of a built-in template: "llama3", "chatml", "llama2" or "mistral". Throws
// hone::Error naming the known ones for any other name.
const std::string& builtin_chat_template(const std::string& name);

// Compiles `template_text` to check its syntax before any data is rendered with it; throws
// hone::Error "<origin>:line:col: ..." naming where it came from, e.g. origin
// "tokenizer_config.json: chat_template".
void check_chat_template(const std::string& template_text, const std::string& origin);

// The "chat_template" of a tokenizer_config.json: a string, or a list of {name, template} of
// which the one named "default" is taken. Throws hone::Error when the file has none.
std::string chat_template_from_config(const std::string& tokenizer_config_path);

}  // namespace hone
