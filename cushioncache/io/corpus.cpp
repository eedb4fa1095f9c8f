#include "cushioncache/io/corpus.h"

#include <algorithm>
#include <cstdint>
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

// The "text" field of each JSONL row, with errors naming the row.
std::vector<std::string> jsonl_texts(const fs::path& path, std::size_t limit) {
  const auto rows = read_jsonl_file(path);
  std::vector<std::string> texts;
  for (std::size_t i = 0; i < rows.size() && i < limit; ++i) {
    const auto& doc = rows[i];
    if (!doc.is_object() || !doc.contains("text") || !doc["text"].is_string())
      throw_error(ErrorKind::kCorruptInput, "{}: document {} has no string field 'text'", path.string(), i + 1);
    texts.push_back(doc["text"].get<std::string>());
  }
  return texts;
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? separator : "") + parts[i];
  return out;
}

fs::path existing_file(const std::string& path) {
  if (!fs::exists(path)) throw_error(ErrorKind::kNotFound, "corpus '{}' is neither wikitext2, c4 nor an existing file", path);
  return path;
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
    corpus.text = join(jsonl_texts(corpus.source, 1100), " ");
    corpus.max_windows = 256;
  } else {
    const fs::path path = existing_file(name_or_path);
    corpus.source = path.string();
    corpus.text = path.extension() == ".jsonl" ? join(jsonl_texts(path, SIZE_MAX), " ") : read_file(path);
  }
  if (corpus.text.empty()) throw_error(ErrorKind::kCorruptInput, "corpus {} ({}) is empty", corpus.name, corpus.source);
  return corpus;
}

std::vector<std::string> load_documents(const std::string& name_or_path) {
  std::vector<std::string> documents;
  if (name_or_path == "c4") {
    documents = jsonl_texts(shared_file("text/c4/c4_validation_2k.jsonl"), SIZE_MAX);
  } else if (name_or_path != "wikitext2" && fs::path(name_or_path).extension() == ".jsonl") {
    documents = jsonl_texts(existing_file(name_or_path), SIZE_MAX);
  } else {
    const std::string text = load_corpus(name_or_path).text;
    for (std::size_t start = 0; start < text.size();) {
      std::size_t end = text.find("\n\n", start);
      if (end == std::string::npos) end = text.size();
      documents.push_back(text.substr(start, end - start));
      start = end + 2;
    }
  }
  documents.erase(std::remove_if(documents.begin(), documents.end(),
                                 [](const std::string& d) { return d.find_first_not_of(" \t\n\r") == std::string::npos; }),
                  documents.end());
  if (documents.empty()) throw_error(ErrorKind::kCorruptInput, "corpus {} holds no documents", name_or_path);
  return documents;
}

}  // namespace cushioncache
