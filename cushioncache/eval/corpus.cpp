#include "cushioncache/eval/corpus.h"

#include <filesystem>

#include "cushioncache/core/data_dir.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"
#include "cushioncache/io/json_file.h"

namespace cushioncache {
namespace fs = std::filesystem;

namespace {

fs::path shared_file(const char* relative) {
  auto path = find_data(relative);
  if (!path) throw_error(ErrorKind::kNotFound, "{} not found under {} (set CC_DATA_DIR)", relative, data_dir().string());
  return *path;
}

// " ".join(doc["text"] for the first `limit` documents), with errors naming the line.
std::string join_jsonl_text(const fs::path& path, std::size_t limit) {
  const auto rows = read_jsonl_file(path);
  std::string joined;
  for (std::size_t i = 0; i < rows.size() && i < limit; ++i) {
    const auto& doc = rows[i];
    if (!doc.is_object() || !doc.contains("text") || !doc["text"].is_string())
      throw_error(ErrorKind::kCorruptInput, "{}: document {} has no string field 'text'", path.string(), i + 1);
    if (i > 0) joined += ' ';
    joined += doc["text"].get<std::string>();
  }
  return joined;
}

}  // namespace

Corpus load_corpus(const std::string& name_or_path) {
  Corpus corpus;
  corpus.name = name_or_path;
  if (name_or_path == "wikitext2") {
    corpus.source = shared_file("text/wikitext-2-raw/wiki.test.gptq.txt").string();
    corpus.text = read_file(corpus.source);
  } else if (name_or_path == "c4") {
    corpus.source = shared_file("text/c4/c4_validation_2k.jsonl").string();
    corpus.text = join_jsonl_text(corpus.source, 1100);
    corpus.max_windows = 256;
  } else {
    const fs::path path(name_or_path);
    if (!fs::exists(path))
      throw_error(ErrorKind::kNotFound, "corpus '{}' is neither wikitext2, c4 nor an existing file", name_or_path);
    corpus.source = path.string();
    corpus.text = path.extension() == ".jsonl" ? join_jsonl_text(path, static_cast<std::size_t>(-1)) : read_file(path);
  }
  if (corpus.text.empty()) throw_error(ErrorKind::kCorruptInput, "corpus {} ({}) is empty", corpus.name, corpus.source);
  return corpus;
}

}  // namespace cushioncache
