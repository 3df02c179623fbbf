// Plain-text corpora: a file, a folder or a glob pattern, read into documents in a fixed order.
#pragma once

#include <string>
#include <vector>

namespace hone {

struct Document {
  std::string source;  // the file it came from ("path" or "path#k" when split, k from 0)
  std::string text;    // UTF-8, byte order mark removed
};

struct CorpusOptions {
  // Empty (the default): each file is one document. Otherwise each file is cut into documents at
  // every occurrence of this string (e.g. "\n\n\n"); the separator is dropped and pieces that are
  // empty are skipped, so a trailing separator adds no document.
  std::string doc_separator;
};

// `spec` is one of:
//  - a regular file: read as is, whatever its extension;
//  - a folder: every *.txt and *.md file below it (recursively), sorted by path (byte order);
//  - a glob(3) pattern (contains *, ? or [): its matches in sorted order; a matched folder
//    contributes its *.txt / *.md files as above. The same file is never read twice.
// Throws hone::Error naming `spec` when nothing matches, and naming the file when one cannot be
// read.
std::vector<Document> read_text_corpus(const std::string& spec, const CorpusOptions& options = {});

// The files `spec` names (as above), in reading order, each once. Throws as read_text_corpus.
std::vector<std::string> corpus_files(const std::string& spec);

}  // namespace hone
