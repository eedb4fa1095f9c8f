// Text corpora for evaluation and calibration, built as the perplexity protocols papers
// use them:
//   wikitext2: the exact string GPTQ-style scripts build ("\n\n".join of the raw test
//              rows), read from text/wikitext-2-raw/wiki.test.gptq.txt;
//   c4:        GPTQ's "c4-new" construction: " ".join of the first 1100 validation
//              documents' text (text/c4/c4_validation_2k.jsonl), windows capped at 256;
//   a path:    a .txt file as is, or a .jsonl file's "text" fields joined with " ".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cushioncache {

struct Corpus {
  std::string name;    // "wikitext2", "c4" or the path given
  std::string source;  // the file read
  std::string text;
  std::int64_t max_windows = 0;  // the protocol's own cap (c4: 256), 0 = none
};

// Throws kNotFound naming the file (and $CC_DATA_DIR) when the data is missing.
Corpus load_corpus(const std::string& name_or_path);

// The separate documents of a corpus (calibration samples windows from single
// documents): c4 gives every document of the shared file, a .jsonl path its "text"
// fields, wikitext2 and .txt files their "\n\n"-separated paragraphs. Empty ones are
// dropped.
std::vector<std::string> load_documents(const std::string& name_or_path);

}  // namespace cushioncache
