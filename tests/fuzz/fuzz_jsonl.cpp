// libFuzzer target: a JSONL instruction-data file through read_instruct_file in each format
// (completion, alpaca, chat with the built-in chatml template), stopping at the first bad line
// and skipping bad lines. The tokenizer is the small byte-level BPE in tests/fuzz/jsonl_tokenizer.
#include "data/chat_template.h"
#include "data/instruct_dataset.h"
#include "data/tokenizer.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<hone::Tokenizer> tok =
      hone::load_tokenizer(HONE_FUZZ_DIR "/jsonl_tokenizer/tokenizer.json");
  static const std::string dir = hone::fuzz::scratch_subdir("jsonl");
  const std::string path =
      hone::fuzz::write_file(dir, "data.jsonl", hone::fuzz::as_view(data, size));
  for (const char* format : {"completion", "alpaca", "chat"}) {
    for (bool skip : {false, true}) {
      hone::InstructOptions o;
      o.format = format;
      o.seq_len = 64;
      o.skip_bad_lines = skip;
      if (o.format == "chat") o.chat_template = hone::builtin_chat_template("chatml");
      try {
        const hone::InstructFile f = hone::read_instruct_file(path, *tok, o);
        (void)hone::pack_instruct(f.examples, o.seq_len, hone::pad_id_of(*tok));
      } catch (const hone::Error& e) {
        hone::fuzz::expected(e);
      }
    }
  }
  return 0;
}
