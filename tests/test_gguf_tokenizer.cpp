// Tokenizers from GGUF metadata: llama.cpp's vocabulary test files (tokenizers/gguf/ in
// the shared data), whose .out ids come from each model's own Hugging Face tokenizer;
// the tokenizer.json rebuilt from the metadata, written out and read back; special
// tokens and BOS defaults; and named errors for broken metadata (small GGUF files from
// tests/support/gguf_writer.h).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cushioncache/core/files.h"
#include "cushioncache/io/gguf.h"
#include "cushioncache/tokenizer/gguf_tokenizer.h"
#include "cushioncache/tokenizer/tokenizer.h"
#include "support/gguf_writer.h"
#include "support/test_support.h"

namespace cc = cushioncache;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* const kVocabularies[] = {"llama-spm", "gpt-2", "phi-3", "mpt", "deepseek-llm"};

struct VocabTest {
  std::string text;
  std::vector<std::int64_t> ids;
};

// As llama.cpp's tests/test-tokenizer-0.cpp reads them: the .inp file cut at each
// "\n__ggml_vocab_test__\n" (the file ends with one, which leaves no empty last test),
// and one .out line of space-separated ids per test.
std::vector<VocabTest> read_vocab_tests(const fs::path& inp, const fs::path& out) {
  const std::string raw = cc::read_file(inp);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (std::size_t pos = 0; pos < raw.size();) {
    const std::size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      texts.push_back(raw.substr(pos));
      break;
    }
    texts.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<VocabTest> tests;
  std::istringstream lines(cc::read_file(out));
  std::string line;
  for (const auto& text : texts) {
    REQUIRE(std::getline(lines, line));
    VocabTest t{text, {}};
    std::istringstream ids(line);
    for (std::int64_t id; ids >> id;) t.ids.push_back(id);
    tests.push_back(std::move(t));
  }
  CHECK_FALSE(std::getline(lines, line));  // as many .out lines as tests
  return tests;
}

struct VocabFiles {
  fs::path gguf;
  std::vector<VocabTest> tests;
};

std::optional<VocabFiles> vocab_files(const std::string& name) {
  const std::string base = "tokenizers/gguf/ggml-vocab-" + name + ".gguf";
  auto gguf = cc::testing::data_file(base);
  auto inp = cc::testing::data_file(base + ".inp");
  auto out = cc::testing::data_file(base + ".out");
  if (!gguf || !inp || !out) return std::nullopt;
  return VocabFiles{*gguf, read_vocab_tests(*inp, *out)};
}

std::string joined(const std::vector<std::int64_t>& ids) {
  std::string s;
  for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s;
}

// Metadata arrays in the shape llama.cpp's converter writes them.
cc::testing::GgufValue int32s(const std::vector<std::int32_t>& values) {
  std::vector<cc::testing::GgufValue> items;
  for (auto v : values) items.push_back(cc::testing::GgufValue::i32(v));
  return cc::testing::GgufValue::array(cc::GgufValueType::kInt32, items);
}
cc::testing::GgufValue float32s(const std::vector<float>& values) {
  std::vector<cc::testing::GgufValue> items;
  for (auto v : values) items.push_back(cc::testing::GgufValue::f32(v));
  return cc::testing::GgufValue::array(cc::GgufValueType::kFloat32, items);
}

// A byte-level vocabulary small enough to reason about: "a" "b" "ab", EOS control token;
// `skip` leaves one key out, `extra` replaces or adds keys.
fs::path tiny_gpt2(const fs::path& path, const std::string& skip = "",
                   const std::vector<std::pair<std::string, cc::testing::GgufValue>>& extra = {}) {
  using V = cc::testing::GgufValue;
  const std::vector<std::pair<std::string, V>> kvs = {
      {"general.architecture", V::string("gpt2")},
      {"tokenizer.ggml.model", V::string("gpt2")},
      {"tokenizer.ggml.pre", V::string("gpt-2")},
      {"tokenizer.ggml.tokens", V::strings({"a", "b", "ab", "<eos>"})},
      {"tokenizer.ggml.token_type", int32s({1, 1, 1, 3})},
      {"tokenizer.ggml.merges", V::strings({"a b"})},
      {"tokenizer.ggml.eos_token_id", V::u32(3)},
  };
  cc::testing::GgufWriter w;
  // Pairs, not structured bindings: C++17 lambdas cannot capture those (clang refuses).
  for (const auto& kv : kvs) {
    if (kv.first == skip) continue;
    const auto replaced = std::find_if(extra.begin(), extra.end(), [&](const auto& e) { return e.first == kv.first; });
    w.add(kv.first, replaced != extra.end() ? replaced->second : kv.second);
  }
  for (const auto& e : extra)
    if (std::none_of(kvs.begin(), kvs.end(), [&](const auto& kv) { return kv.first == e.first; })) w.add(e.first, e.second);
  w.write(path);
  return path;
}

}  // namespace

TEST_CASE("GGUF vocabularies encode llama.cpp's test strings as their Hugging Face tokenizers do", "[tokenizer][gguf]") {
  for (const char* name : kVocabularies) {
    DYNAMIC_SECTION(name) {
      auto files = vocab_files(name);
      if (!files) return;
      auto tok = cc::load_tokenizer(files->gguf);
      REQUIRE(files->tests.size() == 46);
      int mismatches = 0;
      for (std::size_t i = 0; i < files->tests.size(); ++i) {
        const auto& t = files->tests[i];
        INFO(name << " test " << i << ": '" << t.text << "'");
        const auto got = tok->encode(t.text, cc::BosPolicy::kNo);
        CHECK(joined(got) == joined(t.ids));
        mismatches += got != t.ids;
      }
      CHECK(mismatches == 0);
    }
  }
}

TEST_CASE("decoding a GGUF tokenizer's ids gives the text back", "[tokenizer][gguf]") {
  for (const char* name : kVocabularies) {
    DYNAMIC_SECTION(name) {
      auto files = vocab_files(name);
      if (!files) return;
      auto tok = cc::load_tokenizer(files->gguf);
      for (const auto& t : files->tests) {
        INFO("'" << t.text << "'");
        CHECK(tok->decode(t.ids) == t.text);
      }
    }
  }
}

TEST_CASE("the tokenizer.json rebuilt from GGUF metadata, written and read back, encodes the same", "[tokenizer][gguf]") {
  for (const char* name : {"llama-spm", "deepseek-llm"}) {
    DYNAMIC_SECTION(name) {
      auto files = vocab_files(name);
      if (!files) return;
      const auto gguf_files = cc::gguf_tokenizer_files(cc::GgufFile::open(files->gguf));
      cc::testing::TempDir dir;
      std::ofstream(dir / "tokenizer.json") << gguf_files.tokenizer.dump();
      std::ofstream(dir / "tokenizer_config.json") << gguf_files.config.dump();
      auto from_folder = cc::load_tokenizer(dir.path());
      auto from_gguf = cc::load_tokenizer(files->gguf);
      CHECK(from_folder->vocab_size() == from_gguf->vocab_size());
      CHECK(from_folder->bos_id() == from_gguf->bos_id());
      CHECK(from_folder->eos_id() == from_gguf->eos_id());
      for (const auto& t : files->tests) {
        INFO("'" << t.text << "'");
        CHECK(from_folder->encode(t.text) == from_gguf->encode(t.text));
      }
    }
  }
}

TEST_CASE("GGUF special tokens and BOS follow the metadata, with llama.cpp's defaults", "[tokenizer][gguf]") {
  SECTION("SentencePiece (LLaMA): add_bos_token true, control tokens special") {
    auto files = vocab_files("llama-spm");
    if (!files) return;
    auto tok = cc::load_tokenizer(files->gguf);
    CHECK(tok->vocab_size() == 32000);
    CHECK(tok->bos_id() == 1);
    CHECK(tok->eos_id() == 2);
    CHECK((tok->encode("Hello world") == std::vector<std::int64_t>{1, 15043, 3186}));
    CHECK((tok->encode("Hello world", cc::BosPolicy::kNo) == std::vector<std::int64_t>{15043, 3186}));
    CHECK(tok->is_special(1));
    CHECK(tok->is_special(0));  // <unk>
    CHECK_FALSE(tok->is_special(15043));
    CHECK(tok->token_text(13) == "<0x0A>");
    // Each stretch of text between special tokens gets its own "▁", as in llama.cpp.
    std::vector<std::int64_t> expected = tok->encode("a", cc::BosPolicy::kNo);
    expected.push_back(2);
    for (auto id : tok->encode("b", cc::BosPolicy::kNo)) expected.push_back(id);
    CHECK(tok->encode("a</s>b", cc::BosPolicy::kNo) == expected);
  }
  SECTION("byte-level BPE: BOS only when the metadata asks") {
    auto gpt2 = vocab_files("gpt-2");
    auto deepseek = vocab_files("deepseek-llm");
    auto mpt = vocab_files("mpt");
    if (!gpt2 || !deepseek || !mpt) return;
    auto g = cc::load_tokenizer(gpt2->gguf);
    CHECK(g->bos_id() == 50256);
    CHECK((g->encode("Hello") == std::vector<std::int64_t>{15496}));  // no add_bos_token key: none
    CHECK((g->encode("x<|endoftext|>y") == std::vector<std::int64_t>{87, 50256, 88}));
    auto d = cc::load_tokenizer(deepseek->gguf);
    CHECK((d->encode("Hello") == std::vector<std::int64_t>{100000, 17464}));  // add_bos_token true
    auto m = cc::load_tokenizer(mpt->gguf);
    CHECK(m->is_special(0));
    CHECK_FALSE(m->is_special(50276));  // "  ", a user-defined token: matched whole, not special
    CHECK((m->encode("  Hello") == std::vector<std::int64_t>{50276, 12092}));
  }
}

TEST_CASE("a GGUF file is a tokenizer whatever its name, and broken metadata gives named errors", "[tokenizer][gguf][errors]") {
  using V = cc::testing::GgufValue;
  cc::testing::TempDir dir;
  auto expect = [](const fs::path& path, cc::ErrorKind kind, std::initializer_list<std::string_view> fragments) {
    cc::testing::expect_error([&] { cc::load_tokenizer(path); }, kind, fragments);
  };
  SECTION("a well-formed tiny vocabulary, recognised by its magic") {
    auto tok = cc::load_tokenizer(tiny_gpt2(dir / "vocab.bin"));
    CHECK((tok->encode("abab") == std::vector<std::int64_t>{2, 2}));
    CHECK((tok->encode("ba") == std::vector<std::int64_t>{1, 0}));
    CHECK((tok->encode("a<eos>") == std::vector<std::int64_t>{0, 3}));
    CHECK(tok->eos_id() == 3);
    CHECK_FALSE(tok->bos_id().has_value());
  }
  SECTION("no tokenizer at all") {
    expect(tiny_gpt2(dir / "weights_only.gguf", "tokenizer.ggml.model"), cc::ErrorKind::kCorruptInput,
           {"weights_only.gguf", "tokenizer.ggml.model", "no tokenizer"});
  }
  SECTION("no tokens") {
    expect(tiny_gpt2(dir / "no_tokens.gguf", "tokenizer.ggml.tokens"), cc::ErrorKind::kCorruptInput,
           {"no_tokens.gguf", "tokenizer.ggml.tokens"});
  }
  SECTION("token_type of another length") {
    expect(tiny_gpt2(dir / "types.gguf", "", {{"tokenizer.ggml.token_type", int32s({1, 1, 1})}}),
           cc::ErrorKind::kCorruptInput, {"types.gguf", "tokenizer.ggml.token_type", "3 entries", "has 4"});
  }
  SECTION("scores of another length") {
    cc::testing::GgufWriter w;
    w.add("tokenizer.ggml.model", V::string("llama"));
    w.add("tokenizer.ggml.tokens", V::strings({"<unk>", "<s>", "</s>", "a"}));
    w.add("tokenizer.ggml.scores", float32s({0, 0, 0}));
    w.add("tokenizer.ggml.token_type", int32s({2, 3, 3, 1}));
    w.write(dir / "scores.gguf");
    expect(dir / "scores.gguf", cc::ErrorKind::kCorruptInput, {"scores.gguf", "tokenizer.ggml.scores", "3 entries", "has 4"});
  }
  SECTION("a merge naming a missing token") {
    expect(tiny_gpt2(dir / "merges.gguf", "", {{"tokenizer.ggml.merges", V::strings({"a b", "a c"})}}),
           cc::ErrorKind::kCorruptInput, {"merges.gguf", "tokenizer.ggml.merges", "merge 1 'a c'", "'c'"});
    expect(tiny_gpt2(dir / "merges2.gguf", "", {{"tokenizer.ggml.merges", V::strings({"b a"})}}),
           cc::ErrorKind::kCorruptInput, {"merges2.gguf", "tokenizer.ggml.merges", "merge 0 'b a' makes 'ba'"});
  }
  SECTION("a special token id outside the vocabulary") {
    expect(tiny_gpt2(dir / "bos.gguf", "", {{"tokenizer.ggml.bos_token_id", V::u32(4)}}), cc::ErrorKind::kCorruptInput,
           {"bos.gguf", "tokenizer.ggml.bos_token_id", "token id 4", "4 tokens"});
  }
  SECTION("add_bos_token without a BOS id") {
    expect(tiny_gpt2(dir / "add_bos.gguf", "", {{"tokenizer.ggml.add_bos_token", V::boolean(true)}}),
           cc::ErrorKind::kCorruptInput, {"add_bos.gguf", "tokenizer.ggml.add_bos_token", "bos_token_id"});
  }
  SECTION("an unknown pre-tokenizer or tokenizer model is unsupported, by name") {
    expect(tiny_gpt2(dir / "pre.gguf", "", {{"tokenizer.ggml.pre", V::string("no-such-pre")}}), cc::ErrorKind::kUnsupported,
           {"pre.gguf", "tokenizer.ggml.pre", "no-such-pre", "smollm"});
    expect(tiny_gpt2(dir / "bert.gguf", "", {{"tokenizer.ggml.model", V::string("bert")}}), cc::ErrorKind::kUnsupported,
           {"bert.gguf", "tokenizer.ggml.model", "bert"});
  }
}
