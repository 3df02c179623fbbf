// Chat templates: render a conversation with a model's own Jinja `chat_template` (from
// tokenizer_config.json) exactly as Hugging Face transformers does, or with a built-in template
// for models that ship none.
#pragma once

#include <cstddef>
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

// Where one assistant message sits in a rendered conversation (byte offsets into its text).
struct AssistantSpan {
  size_t message = 0;  // index in the conversation
  // Where the model starts producing the turn: right after the turn's generation prompt (the
  // header add_generation_prompt emits, e.g. "<|im_start|>assistant\n"). Text the template puts
  // between that header and the content (Qwen3's "<think>\n\n</think>\n\n", Llama 2's space)
  // is the model's to produce, so it lies inside the span.
  size_t begin = 0;
  size_t content_begin = 0;  // [content_begin, content_end): the content as the template renders
  size_t content_end = 0;    // it (trimmed, reasoning moved into a think block, ...)
};

// A conversation rendered once (add_generation_prompt false) and the span of every assistant
// message in that one text. Exact for templates that render a turn differently depending on
// later turns (Qwen3 drops earlier turns' <think> blocks; Llama 3's always-present trailing
// header): each content is located by rendering the conversation again with that content
// replaced by a sentinel (the text differs exactly where the content goes), and each turn's
// start by the prompt the model would be given for it, render(messages[:k], true) — its end when
// that is a prefix of the text, else the position whose preceding text best matches the prompt's
// tail. Throws hone::Error when the template rewrites a content (so it cannot be located) or
// renders earlier turns differently depending on a later content.
struct RenderedChat {
  std::string text;
  std::vector<AssistantSpan> assistant;  // in message order
};
RenderedChat render_chat_spans(
    const std::string& template_text, const nlohmann::ordered_json& messages,
    const std::string& bos_token, const std::string& eos_token,
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
