// Tokenizers against independent encoders: Mistral's (SentencePiece-style, in the shared
// data's folder tokenizers/llama2, a misnomer kept as the data's name), LLaMA-3's and GPT-2's
// files from the shared data, with expected ids produced by transformers.js and
// gpt-3-encoder (tests/fixtures/tokenizer_reference.json, made by
// scripts/tokenizer_reference/make_reference.mjs); and the llama2.c tokenizer's format.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <fmt/format.h>
#include <sstream>

#include "cushioncache/core/files.h"
#include "cushioncache/tokenizer/tokenizer.h"
#include "support/test_support.h"

namespace cc = cushioncache;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const json& reference() {
  static const json j = json::parse(cc::read_file(fs::path(CC_SOURCE_DIR) / "tests/fixtures/tokenizer_reference.json"));
  return j;
}

std::vector<std::string> lines_of(const fs::path& path) {
  std::vector<std::string> lines;
  std::istringstream in(cc::read_file(path));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string joined(const std::vector<std::int64_t>& ids) {
  std::string s;
  for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s;
}

}  // namespace

TEST_CASE("HF tokenizers encode exactly as the reference implementations", "[tokenizer]") {
  for (const char* name : {"llama2", "llama3", "gpt2"}) {
    DYNAMIC_SECTION(name) {
      auto folder = cc::testing::data_file(std::string("tokenizers/") + name);
      if (!folder) return;
      auto tok = cc::load_tokenizer(*folder);
      const json& ref = reference().at("tokenizers").at(name);
      for (const auto& c : ref.at("cases")) {
        std::string text;
        if (c.contains("text")) {
          text = c.at("text").get<std::string>();
        } else {
          auto file = cc::testing::data_file(c.at("file").get<std::string>());
          if (!file) return;
          text = lines_of(*file).at(c.at("line").get<std::size_t>() - 1);
        }
        INFO("text: '" << text << "'");
        CHECK(joined(tok->encode(text)) == joined(c.at("ids").get<std::vector<std::int64_t>>()));
      }
    }
  }
}

TEST_CASE("a whole WikiText-2 test split encodes to the reference token stream", "[tokenizer][slow]") {
  auto wiki = cc::testing::data_file("text/wikitext-2-raw/wiki.test.gptq.txt");
  if (!wiki) return;
  const std::string text = cc::read_file(*wiki);
  for (const char* name : {"llama2", "llama3", "gpt2"}) {
    DYNAMIC_SECTION(name) {
      auto folder = cc::testing::data_file(std::string("tokenizers/") + name);
      if (!folder) return;
      const json& expected = reference().at("tokenizers").at(name).at("whole_file");
      const auto ids = cc::load_tokenizer(*folder)->encode(text);
      CHECK(static_cast<std::int64_t>(ids.size()) == expected.at("count").get<std::int64_t>());
      std::uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a, as the fixture generator computes it
      for (unsigned char byte : joined(ids)) hash = (hash ^ byte) * 0x100000001b3ull;
      CHECK(fmt::format("{:016x}", hash) == expected.at("fnv1a64_of_space_joined_ids").get<std::string>());
    }
  }
}

TEST_CASE("decode inverts encode on ordinary text", "[tokenizer]") {
  auto wiki = cc::testing::data_file("text/wikitext-2-raw/wiki.test.raw");
  if (!wiki) return;
  const auto lines = lines_of(*wiki);
  for (const char* name : {"llama2", "llama3", "gpt2"}) {
    DYNAMIC_SECTION(name) {
      auto folder = cc::testing::data_file(std::string("tokenizers/") + name);
      if (!folder) return;
      auto tok = cc::load_tokenizer(*folder);
      for (std::size_t i = 0; i < 400 && i < lines.size(); ++i) {
        // SentencePiece-style decoding drops the one space the normalizer prepends.
        std::string line = lines[i];
        if (std::string(name) == "llama2") line.erase(0, line.find_first_not_of(' '));
        if (line.empty()) continue;
        INFO("line " << i + 1);
        CHECK(tok->decode(tok->encode(line)) == line);
      }
      CHECK(tok->decode(tok->encode("naïve 日本 🤗 x")) == "naïve 日本 🤗 x");
    }
  }
}

TEST_CASE("BOS follows the tokenizer's own config unless overridden", "[tokenizer]") {
  auto mistral = cc::testing::data_file("tokenizers/llama2");  // Mistral-7B's vocabulary, despite the folder name
  auto llama3 = cc::testing::data_file("tokenizers/llama3");
  auto gpt2 = cc::testing::data_file("tokenizers/gpt2");
  if (!mistral || !llama3 || !gpt2) return;
  auto t2 = cc::load_tokenizer(*mistral);
  CHECK(t2->bos_id() == 1);
  CHECK(t2->eos_id() == 2);
  CHECK(t2->encode("hi", cc::BosPolicy::kAuto).front() == 1);  // add_bos_token: true
  CHECK(t2->encode("hi", cc::BosPolicy::kNo).front() != 1);
  CHECK(t2->encode("hi", cc::BosPolicy::kYes) == t2->encode("hi", cc::BosPolicy::kAuto));
  CHECK(t2->is_special(1));
  CHECK_FALSE(t2->is_special(300));
  // "<s>" in text is the BOS token, and each side gets its own prepended "▁" (the legacy
  // LLaMA-2-style behaviour Mistral's tokenizer.json keeps; transformers.js gives [264, 1, 287] too).
  CHECK(t2->encode("a<s>b", cc::BosPolicy::kNo) == std::vector<std::int64_t>{264, 1, 287});

  auto t3 = cc::load_tokenizer(*llama3);
  CHECK(t3->bos_id() == 128000);
  CHECK(t3->encode("hi", cc::BosPolicy::kAuto).front() != 128000);  // this tokenizer.json adds no BOS itself
  CHECK(t3->encode("hi", cc::BosPolicy::kYes).front() == 128000);
  CHECK(t3->vocab_size() == 128256);
  CHECK(t3->decode(t3->encode("x", cc::BosPolicy::kYes), /*skip_special=*/false) == "<|begin_of_text|>x");

  auto g = cc::load_tokenizer(*gpt2);
  CHECK(g->encode("x<|endoftext|>y") == std::vector<std::int64_t>{87, 50256, 88});
  CHECK(g->vocab_size() == 50257);
}

TEST_CASE("the llama2.c tokenizer follows run.c's encoding rules", "[tokenizer][llama2c]") {
  auto path = cc::testing::data_file("models/stories260K/tok512.bin");
  if (!path) return;
  auto tok = cc::load_tokenizer(*path);
  CHECK(tok->vocab_size() == 512);
  CHECK(tok->bos_id() == 1);
  // Empty text is BOS alone; otherwise a dummy-prefix space comes first.
  CHECK(tok->encode("") == std::vector<std::int64_t>{1});
  auto ids = tok->encode("Once upon a time");
  CHECK(ids.front() == 1);
  std::string pieces;
  for (std::size_t i = 1; i < ids.size(); ++i) pieces += tok->token_text(ids[i]);
  CHECK(pieces == " Once upon a time");
  CHECK(tok->decode(ids) == "Once upon a time");
  // Characters missing from the vocabulary fall back to byte tokens at byte + 3.
  CHECK(tok->token_text(0xC3 + 3) == "<0xC3>");
  // "日" is E6 97 A5 in UTF-8 and not in this 512-token vocabulary.
  const auto bytes = tok->encode("日", cc::BosPolicy::kNo);
  REQUIRE(bytes.size() == 4);
  CHECK(tok->token_text(bytes[0]) == " ");  // the dummy prefix
  CHECK(std::vector<std::int64_t>(bytes.begin() + 1, bytes.end()) == std::vector<std::int64_t>{0xE6 + 3, 0x97 + 3, 0xA5 + 3});
  CHECK(tok->decode(tok->encode("日", cc::BosPolicy::kYes)) == "日");
  // Without BOS the dummy-prefix space stays: llama2.c strips it only after BOS.
  CHECK(tok->decode(tok->encode("日", cc::BosPolicy::kNo)) == " 日");
}

TEST_CASE("bad tokenizer files and inputs give named errors", "[tokenizer][errors]") {
  cc::testing::TempDir dir;
  SECTION("bad JSON") {
    std::ofstream(dir / "tokenizer.json") << "{\"model\": ";
    cc::testing::expect_error([&] { cc::load_tokenizer(dir.path()); }, cc::ErrorKind::kCorruptInput, {"tokenizer.json", "invalid JSON"});
  }
  SECTION("unsupported model type") {
    std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "WordPiece", "vocab": {}}})";
    cc::testing::expect_error([&] { cc::load_tokenizer(dir.path()); }, cc::ErrorKind::kUnsupported, {"tokenizer.json", "WordPiece"});
  }
  SECTION("merge naming an unknown token") {
    std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}})";
    cc::testing::expect_error([&] { cc::load_tokenizer(dir.path()); }, cc::ErrorKind::kCorruptInput, {"tokenizer.json", "merge 0", "a c"});
  }
  SECTION("a model without its vocabulary (fuzzer finding: was an internal error)") {
    std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "BPE", "merges": []}})";
    cc::testing::expect_error([&] { cc::load_tokenizer(dir.path()); }, cc::ErrorKind::kCorruptInput,
                              {"tokenizer.json", "unexpected JSON structure", "vocab"});
  }
  SECTION("unsupported pre-tokenizer") {
    std::ofstream(dir / "tokenizer.json")
        << R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "BertPreTokenizer"}})";
    cc::testing::expect_error([&] { cc::load_tokenizer(dir.path()); }, cc::ErrorKind::kUnsupported, {"BertPreTokenizer"});
  }
  SECTION("truncated llama2.c tokenizer") {
    auto path = cc::testing::data_file("models/stories260K/tok512.bin");
    if (!path) return;
    const std::string bytes = cc::read_file(*path);
    std::ofstream(dir / "tok.bin", std::ios::binary) << bytes.substr(0, bytes.size() - 3);
    cc::testing::expect_error([&] { cc::load_tokenizer(dir / "tok.bin"); }, cc::ErrorKind::kCorruptInput, {"tok.bin", "truncated"});
  }
  SECTION("missing files and invalid UTF-8") {
    cc::testing::expect_error([&] { cc::load_tokenizer(dir.path()); }, cc::ErrorKind::kNotFound, {"no tokenizer.json"});
    auto llama3 = cc::testing::data_file("tokenizers/llama3");
    if (!llama3) return;
    cc::testing::expect_error([&] { cc::load_tokenizer(*llama3)->encode("ok \xff\xfe"); }, cc::ErrorKind::kInvalidArgument,
                              {"UTF-8", "byte 3"});
  }
}

namespace {
// llama2.c's run.c merge loop, verbatim in spirit: rescan every adjacent pair, merge the
// best-scoring one (leftmost on ties), repeat. Quadratic, fine for single lines.
std::vector<std::int64_t> run_c_encode(const std::vector<std::string>& pieces, const std::vector<float>& scores,
                                       std::vector<std::int64_t> ids) {
  std::map<std::string, std::int64_t> lookup;
  for (std::size_t i = 0; i < pieces.size(); ++i) lookup.emplace(pieces[i], static_cast<std::int64_t>(i));
  while (true) {
    float best_score = -1e10f;
    std::int64_t best_id = -1;
    std::size_t best_index = 0;
    for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
      auto it = lookup.find(pieces[static_cast<std::size_t>(ids[i])] + pieces[static_cast<std::size_t>(ids[i + 1])]);
      if (it != lookup.end() && scores[static_cast<std::size_t>(it->second)] > best_score) {
        best_score = scores[static_cast<std::size_t>(it->second)];
        best_id = it->second;
        best_index = i;
      }
    }
    if (best_id < 0) return ids;
    ids[best_index] = best_id;
    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best_index) + 1);
  }
}
}  // namespace

TEST_CASE("the llama2.c tokenizer's fast merge equals run.c's quadratic loop", "[tokenizer][llama2c]") {
  auto path = cc::testing::data_file("models/stories260K/tok512.bin");
  auto wiki = cc::testing::data_file("text/wikitext-2-raw/wiki.test.raw");
  if (!path || !wiki) return;
  auto tok = cc::load_tokenizer(*path);
  // Read the vocabulary and scores the way run.c does, independently of the library.
  const std::string bytes = cc::read_file(*path);
  std::vector<std::string> pieces;
  std::vector<float> scores;
  for (std::size_t pos = 4; pos < bytes.size();) {
    float score;
    std::int32_t len;
    std::memcpy(&score, bytes.data() + pos, 4);
    std::memcpy(&len, bytes.data() + pos + 4, 4);
    pieces.emplace_back(bytes.data() + pos + 8, static_cast<std::size_t>(len));
    scores.push_back(score);
    pos += 8 + static_cast<std::size_t>(len);
  }
  REQUIRE(pieces.size() == 512);
  const auto lines = lines_of(*wiki);
  int compared = 0;
  for (std::size_t i = 0; i < lines.size() && compared < 150; ++i) {
    if (lines[i].size() < 2 || lines[i].size() > 600) continue;
    // The unmerged sequence: one token per character (or per byte), as run.c starts.
    std::vector<std::int64_t> start;
    start.push_back(std::find(pieces.begin(), pieces.end(), " ") - pieces.begin());
    for (std::size_t k = 0; k < lines[i].size();) {
      std::size_t len = 1;
      while (k + len < lines[i].size() && len < 4 && (static_cast<unsigned char>(lines[i][k + len]) & 0xC0) == 0x80) ++len;
      auto it = std::find(pieces.begin(), pieces.end(), lines[i].substr(k, len));
      if (it != pieces.end()) {
        start.push_back(it - pieces.begin());
      } else {
        for (std::size_t b = 0; b < len; ++b) start.push_back(static_cast<unsigned char>(lines[i][k + b]) + 3);
      }
      k += len;
    }
    INFO("line " << i + 1);
    CHECK(tok->encode(lines[i], cc::BosPolicy::kNo) == run_c_encode(pieces, scores, start));
    ++compared;
  }
  CHECK(compared == 150);
}
