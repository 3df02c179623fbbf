// Hostile instruction-data inputs: a JSONL line nested 200,000 levels deep (it overflowed the
// stack when the record was copied), and a chat template with a syntax error, which must be
// reported against the tokenizer_config.json it came from, not against the first data line.
#include <gtest/gtest.h>

#include <string>

#include "autograd/error.h"
#include "data/chat_template.h"
#include "data/instruct_dataset.h"
#include "fake_tokenizer.h"
#include "tmpdir.h"

namespace hone {
namespace {

const std::string kDeep = std::string(200000, '[') + std::string(200000, ']');

TEST(InstructInputs, DeeplyNestedLineIsABadLine) {
  test::TempDir dir;
  const std::string f = dir.file("d.jsonl");
  test::write_bytes(f,
                    "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\", \"meta\": " + kDeep +
                        "}, {\"role\": \"assistant\", \"content\": \"yo\"}]}\n" + kDeep + "\n");
  test::ByteTokenizer tok;
  InstructOptions o;
  o.format = "chat";
  o.chat_template = builtin_chat_template("chatml");
  try {
    read_instruct_file(f, tok, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), f + ":1: JSON nested deeper than 512 levels (arrays/objects "
                                         "inside each other); hone refuses such input");
  }
  o.skip_bad_lines = true;
  InstructFile r = read_instruct_file(f, tok, o);
  EXPECT_EQ(r.stats.bad_lines, 2);
  ASSERT_EQ(r.stats.bad_line_messages.size(), 2u);
  EXPECT_EQ(r.stats.bad_line_messages[1].rfind(f + ":2: JSON nested deeper than 512 levels", 0),
            0u);
  // 100 levels are ordinary data: the extra key reaches the template.
  const std::string d100 = std::string(100, '[') + std::string(100, ']');
  test::write_bytes(f, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\", \"meta\": " +
                           d100 + "}, {\"role\": \"assistant\", \"content\": \"yo\"}]}\n");
  o.skip_bad_lines = false;
  EXPECT_EQ(read_instruct_file(f, tok, o).stats.records, 1);
}

TEST(InstructInputs, ChatTemplateSyntaxErrorNamesTokenizerConfig) {
  test::TempDir dir;
  const std::string cfg = dir.file("tokenizer_config.json");
  test::write_bytes(cfg, R"({"chat_template": "{% for m in messages %}{{ m.role }"})");
  try {
    resolve_chat_template("", dir.file("tokenizer.json"));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind(cfg + ": chat_template:1:", 0), 0u) << m;
    EXPECT_NE(m.find("set data.chat_template to a built-in template"), std::string::npos) << m;
  }
  // The same text as a plain check, with any origin.
  EXPECT_THROW(check_chat_template("{{ x", "somewhere"), Error);
  EXPECT_NO_THROW(check_chat_template(builtin_chat_template("llama3"), "llama3"));
  // A good template still resolves to its text.
  test::write_bytes(cfg, R"({"chat_template": "{{ messages[0].content }}"})");
  EXPECT_EQ(resolve_chat_template("", dir.file("tokenizer.json")), "{{ messages[0].content }}");
}

// The fuzzers' input: a template 100,000 parentheses deep overflowed the parser's stack.
TEST(InstructInputs, ChatTemplateNestedTooDeeplyNamesTokenizerConfig) {
  test::TempDir dir;
  const std::string cfg = dir.file("tokenizer_config.json");
  test::write_bytes(cfg, "{\"chat_template\": \"{{ " + std::string(100000, '(') + "1" +
                             std::string(100000, ')') + " }}\"}");
  try {
    resolve_chat_template("", dir.file("tokenizer.json"));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind(cfg + ": chat_template:1:260: template nested too deeply (more than 256 "
                            "levels)",
                      0),
              0u)
        << m.substr(0, 300);
  }
}

TEST(InstructInputs, ChatTemplateConfigTooDeep) {
  test::TempDir dir;
  const std::string cfg = dir.file("tokenizer_config.json");
  test::write_bytes(cfg, "{\"chat_template\": " + kDeep + "}");
  try {
    chat_template_from_config(cfg);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(cfg + ": JSON nested deeper than 512 levels", 0), 0u)
        << e.what();
  }
}

}  // namespace
}  // namespace hone
