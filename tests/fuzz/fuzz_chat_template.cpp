// libFuzzer target: a chat template (the Jinja source a tokenizer_config.json carries) rendered by
// render_chat over a fixed conversation, as instruction data and `hone generate` render it.
#include "data/chat_template.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<hone::ChatMessage> messages = {
      {"system", "Be brief.", nlohmann::ordered_json::object()},
      {"user", "What is 2+2?", nlohmann::ordered_json::object()},
      {"assistant", "4", {{"reasoning_content", "two and two"}}},
      {"user", "And 3+3?", nlohmann::ordered_json::object()},
  };
  static const nlohmann::ordered_json extra = {{"enable_thinking", false},
                                               {"tools", nlohmann::ordered_json::array()}};
  const std::string text(hone::fuzz::as_view(data, size));
  try {
    (void)hone::render_chat(text, messages, true, "<s>", "</s>", extra);
  } catch (const hone::Error& e) {
    hone::fuzz::expected(e);
  }
  return 0;
}
