#include "data/text_corpus.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <system_error>

#include "autograd/error.h"

namespace fs = std::filesystem;

namespace hone {
namespace {

bool is_text_file(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".txt" || ext == ".md";
}

// The *.txt / *.md files below `dir`, sorted by path so the order never depends on the file
// system's listing order.
std::vector<std::string> files_in_folder(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, ec), end;
  if (ec) throw Error(dir + ": cannot list folder (" + ec.message() + ")");
  for (; it != end; it.increment(ec)) {
    if (ec) throw Error(dir + ": cannot list folder (" + ec.message() + ")");
    std::error_code type_ec;
    if (it->is_regular_file(type_ec) && is_text_file(it->path())) {
      out.push_back(it->path().string());
    }
  }
  if (ec) throw Error(dir + ": cannot list folder (" + ec.message() + ")");
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> glob_matches(const std::string& pattern) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> out;
  if (rc == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  }
  ::globfree(&g);
  if (rc != 0 && rc != GLOB_NOMATCH)
    throw Error(pattern + ": glob failed (error " + std::to_string(rc) + ")");
  return out;  // glob(3) sorts its matches unless GLOB_NOSORT is given
}

// The files `spec` names, in reading order.
std::vector<std::string> resolve(const std::string& spec) {
  std::error_code ec;
  const fs::file_status st = fs::status(spec, ec);
  if (fs::is_regular_file(st)) return {spec};
  if (fs::is_directory(st)) return files_in_folder(spec);
  if (spec.find_first_of("*?[") == std::string::npos) {
    throw Error(spec + ": no such file or folder");
  }
  std::vector<std::string> out;
  for (const std::string& m : glob_matches(spec)) {
    if (fs::is_directory(m, ec)) {
      for (auto& f : files_in_folder(m)) out.push_back(std::move(f));
    } else {
      out.push_back(m);
    }
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open file for reading");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(path + ": read error");
  return text;
}

}  // namespace

std::vector<std::string> corpus_files(const std::string& spec) {
  if (spec.empty()) throw Error("text corpus: empty path");
  const std::vector<std::string> files = resolve(spec);
  if (files.empty()) throw Error(spec + ": no files match (folders contribute *.txt and *.md)");
  std::vector<std::string> out;
  std::set<fs::path> seen;  // symlinks can name one file twice; read it once
  for (const std::string& path : files) {
    std::error_code ec;
    fs::path canon = fs::weakly_canonical(path, ec);
    if (ec) canon = path;
    if (seen.insert(canon).second) out.push_back(path);
  }
  return out;
}

std::vector<Document> read_text_corpus(const std::string& spec, const CorpusOptions& options) {
  std::vector<Document> docs;
  for (const std::string& path : corpus_files(spec)) {
    std::string text = read_file(path);
    if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);

    const std::string& sep = options.doc_separator;
    if (sep.empty()) {
      docs.push_back({path, std::move(text)});
      continue;
    }
    size_t start = 0;
    int64_t k = 0;
    while (start <= text.size()) {
      size_t end = text.find(sep, start);
      if (end == std::string::npos) end = text.size();
      if (end > start) {
        docs.push_back({path + "#" + std::to_string(k++), text.substr(start, end - start)});
      }
      start = end + sep.size();
    }
  }
  return docs;
}

}  // namespace hone
