// `hone tokenize` / `hone detokenize`: what a model sees, as JSON id arrays.
#pragma once

#include <iosfwd>
#include <string>

namespace hone {

// Reads all of `in` as UTF-8 text and prints its ids as one JSON array line; with `lines`, one
// array per input line (the "\n" is not part of the text; a last line without "\n" counts).
// `special` adds the BOS/EOS tokens the tokenizer's post-processor/config adds
// (encode(text, true, true)). `tokenizer_path`: tokenizer.json, a folder holding one, or a
// llama2.c tokenizer.bin. Returns 0; throws hone::Error on a bad file. Both stop at the first
// failed write to `out` (full disk, closed pipe): the caller checks `out` and says why.
int run_tokenize(const std::string& tokenizer_path, bool lines, bool special, std::istream& in,
                 std::ostream& out);

// Reads one JSON array of ids per line (blank lines skipped) and prints each decoded text
// followed by "\n". Throws hone::Error naming the line on bad JSON or an out-of-range id.
int run_detokenize(const std::string& tokenizer_path, std::istream& in, std::ostream& out);

}  // namespace hone
