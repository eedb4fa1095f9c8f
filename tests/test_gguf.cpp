// GGUF: metadata of every type round-trips (from our test writer and from gguf-py's), each
// defect in a hand-made file gets its own error naming the file and the key or tensor, and
// dequantization is bit-equal to llama.cpp's gguf-py on random blocks of every type and on
// every tensor of the real SmolLM2 file (the last two through tests/cli/gguf_reference.cmake).
#include <ATen/ATen.h>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "cushioncache/core/files.h"
#include "cushioncache/io/gguf.h"
#include "cushioncache/io/safetensors.h"
#include "support/gguf_writer.h"
#include "support/test_support.h"

namespace cc = cushioncache;
namespace fs = std::filesystem;
using cc::ErrorKind;
using cc::GgmlType;
using cc::GgufValueType;
using cc::testing::expect_error;
using cc::testing::GgufTensorSpec;
using cc::testing::GgufValue;
using cc::testing::GgufWriter;
using cc::testing::gguf_string;
using cc::testing::le_u32;
using cc::testing::le_u64;
using nlohmann::json;

namespace {

fs::path write_bytes(const cc::testing::TempDir& dir, const std::string& name, const std::string& bytes) {
  const fs::path path = dir / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

fs::path write_gguf(const cc::testing::TempDir& dir, const std::string& name, const GgufWriter& w) {
  return write_bytes(dir, name, w.bytes());
}

// The header of a file with these counts, for hand-made bodies.
std::string header(std::uint64_t tensors, std::uint64_t kvs, std::uint32_t version = 3) {
  return "GGUF" + le_u32(version) + le_u64(tensors) + le_u64(kvs);
}

constexpr std::uint32_t type_of(GgmlType t) { return static_cast<std::uint32_t>(t); }

GgufTensorSpec f32_spec(const std::string& name, std::vector<std::uint64_t> ne, std::optional<std::uint64_t> offset = {}) {
  std::uint64_t n = 1;
  for (auto d : ne) n *= d;
  return GgufTensorSpec{name, std::move(ne), type_of(GgmlType::kF32), std::string(n * 4, '\0'), offset};
}

void expect_corrupt(const fs::path& path, std::initializer_list<std::string_view> fragments) {
  std::vector<std::string_view> all(fragments);
  const std::string p = path.string();
  all.push_back(p);
  try {
    (void)cc::GgufFile::open(path);
  } catch (const cc::Error& e) {
    INFO("message: " << e.what());
    CHECK(std::string(cc::to_string(e.kind())) == cc::to_string(ErrorKind::kCorruptInput));
    for (auto f : all) CHECK_THAT(e.what(), Catch::Matchers::Contains(std::string(f)));
    return;
  }
  FAIL("expected kCorruptInput opening " << path);
}

std::vector<std::uint32_t> float_bits(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  std::vector<std::uint32_t> bits(static_cast<std::size_t>(c.numel()));
  std::memcpy(bits.data(), c.data_ptr<float>(), bits.size() * 4);
  return bits;
}

// Largest distance in units in the last place between two float tensors of equal shape
// (0 means bit-equal; NaNs count as equal only with identical bits).
std::uint64_t max_ulps(const at::Tensor& a, const at::Tensor& b) {
  const auto x = float_bits(a), y = float_bits(b);
  std::uint64_t worst = 0;
  auto ordered = [](std::uint32_t u) -> std::int64_t {
    // Maps float bit patterns to integers that are consecutive for consecutive floats.
    return (u & 0x80000000u) ? -static_cast<std::int64_t>(u & 0x7FFFFFFFu) : static_cast<std::int64_t>(u);
  };
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::int64_t d = ordered(x[i]) - ordered(y[i]);
    worst = std::max<std::uint64_t>(worst, static_cast<std::uint64_t>(d < 0 ? -d : d));
  }
  return worst;
}

fs::path model_dir() {
  if (const char* dir = std::getenv("CC_MODEL_DIR"); dir != nullptr && *dir != '\0') return dir;
  const char* home = std::getenv("HOME");
  return fs::path(home != nullptr ? home : "/root") / ".cache/cushioncache/models";
}

}  // namespace

TEST_CASE("gguf metadata of every type round-trips through our test writer", "[gguf]") {
  cc::testing::TempDir dir;
  for (std::uint32_t version : {2u, 3u}) {
    DYNAMIC_SECTION("version " << version) {
      GgufWriter w = cc::testing::sample_gguf();
      w.version = version;
      const auto file = cc::GgufFile::open(write_gguf(dir, "sample.gguf", w));
      CHECK(file.version() == version);
      const json& m = file.metadata();
      CHECK(m.size() == 17);
      CHECK(m["general.architecture"] == "llama");
      CHECK(m["test.u8"].get<std::uint64_t>() == 200);
      CHECK(m["test.i8"].get<std::int64_t>() == -100);
      CHECK(m["test.u16"].get<std::uint64_t>() == 60000);
      CHECK(m["test.i16"].get<std::int64_t>() == -30000);
      CHECK(m["test.u32"].get<std::uint64_t>() == 4000000000u);
      CHECK(m["test.i32"].get<std::int64_t>() == -2000000000);
      CHECK(m["test.u64"].is_number_unsigned());
      CHECK(m["test.u64"].get<std::uint64_t>() == 18446744073709551615ull);
      CHECK(m["test.i64"].get<std::int64_t>() == -9223372036854775807ll);
      CHECK(m["test.f32"].is_number_float());
      CHECK(m["test.f32"].get<double>() == static_cast<double>(0.1f));
      CHECK(m["test.f64"].get<double>() == -2.5e-300);
      CHECK(m["test.bool"] == true);
      CHECK(m["test.string"].get<std::string>() == std::string("h\xc3\xa9llo \xff\x00!", 10));
      CHECK(m["test.tokens"].size() == 4);
      CHECK(m["test.tokens"][2].get<std::string>() == "\xe2\x96\x81the");
      CHECK(m["test.tokens"][3].get<std::string>() == std::string("\x80", 1));
      CHECK(m["test.floats"] == json::array({1.5, -0.25}));
      CHECK(m["test.empty"] == json::array());
      CHECK(m["test.nested"] == json::parse(R"([[1, 2], ["a", "bc"], [[false]]])"));

      CHECK(file.value_type("test.u8") == GgufValueType::kUint8);
      CHECK(file.value_type("test.i8") == GgufValueType::kInt8);
      CHECK(file.value_type("test.u16") == GgufValueType::kUint16);
      CHECK(file.value_type("test.i16") == GgufValueType::kInt16);
      CHECK(file.value_type("test.u32") == GgufValueType::kUint32);
      CHECK(file.value_type("test.i32") == GgufValueType::kInt32);
      CHECK(file.value_type("test.u64") == GgufValueType::kUint64);
      CHECK(file.value_type("test.i64") == GgufValueType::kInt64);
      CHECK(file.value_type("test.f32") == GgufValueType::kFloat32);
      CHECK(file.value_type("test.f64") == GgufValueType::kFloat64);
      CHECK(file.value_type("test.bool") == GgufValueType::kBool);
      CHECK(file.value_type("test.string") == GgufValueType::kString);
      CHECK(file.value_type("test.nested") == GgufValueType::kArray);

      CHECK(file.has("test.u8"));
      CHECK_FALSE(file.has("test.nope"));
      CHECK(file.required_string("general.architecture") == "llama");
      CHECK(file.required_int("test.i32") == -2000000000);
      CHECK(file.optional_int("test.u32") == std::optional<std::int64_t>(4000000000));
      CHECK_FALSE(file.optional_int("test.nope").has_value());
      CHECK(file.optional_float("test.f32") == std::optional<double>(static_cast<double>(0.1f)));
      CHECK(file.optional_float("test.i16") == std::optional<double>(-30000.0));
      CHECK(file.optional_bool("test.bool") == std::optional<bool>(true));
      expect_error([&] { (void)file.required_string("test.u8"); }, ErrorKind::kCorruptInput, {"test.u8", "uint8"});
      expect_error([&] { (void)file.required_int("test.missing"); }, ErrorKind::kCorruptInput, {"test.missing"});
      expect_error([&] { (void)file.required_int("test.f64"); }, ErrorKind::kCorruptInput, {"test.f64", "float64"});
      expect_error([&] { (void)file.optional_int("test.u64"); }, ErrorKind::kCorruptInput, {"test.u64", "int64"});
      expect_error([&] { (void)file.optional_bool("test.u8"); }, ErrorKind::kCorruptInput, {"test.u8"});
      expect_error([&] { (void)file.optional_float("test.string"); }, ErrorKind::kCorruptInput, {"test.string"});
      expect_error([&] { (void)file.value_type("test.missing"); }, ErrorKind::kNotFound, {"test.missing"});

      // Tensors: shapes in PyTorch order, values as written.
      REQUIRE(file.tensors().size() == 3);
      CHECK(file.tensors()[0].name == "weight");
      CHECK(file.tensor("weight").shape == std::vector<std::int64_t>{2, 3});
      CHECK(file.tensor("weight").type == type_of(GgmlType::kF32));
      CHECK(file.tensor("weight").bytes == 24);
      CHECK(file.tensor("weight").numel() == 6);
      CHECK(file.contains("half"));
      CHECK_FALSE(file.contains("nope"));
      expect_error([&] { (void)file.tensor("nope"); }, ErrorKind::kNotFound, {"nope", "sample.gguf"});
      const at::Tensor weight = file.dequantize("weight");
      CHECK(weight.scalar_type() == at::kFloat);
      CHECK(at::equal(weight, at::tensor({1.f, -2.f, 3.5f, 0.f, -0.125f, 1e30f}).view({2, 3})));
      float first = 0;
      std::memcpy(&first, file.raw_data("weight"), 4);
      CHECK(first == 1.f);
      // F16 against LibTorch's own half conversion.
      CHECK(at::equal(file.dequantize("half"), at::tensor({1.f, -0.5f, 65504.f, 0.000061035156f}).to(at::kHalf).to(at::kFloat)));
      // Q8_0: scale 0.5 (exact in half) times -16..15.
      CHECK(at::equal(file.dequantize("q8"), (at::arange(32, at::kFloat) - 16) * 0.5));
    }
  }
}

TEST_CASE("gguf tensor data honours general.alignment", "[gguf]") {
  cc::testing::TempDir dir;
  GgufWriter w;
  w.set_alignment(64);
  w.add_f32_tensor("a", {3}, {1.f, 2.f, 3.f});
  w.add_f32_tensor("b", {2, 2}, {4.f, 5.f, 6.f, 7.f});
  const auto file = cc::GgufFile::open(write_gguf(dir, "aligned.gguf", w));
  CHECK(file.tensor("b").offset == 64);
  CHECK(at::equal(file.dequantize("b"), at::tensor({4.f, 5.f, 6.f, 7.f}).view({2, 2})));

  SECTION("an offset aligned to 32 but not to the declared 64 is rejected") {
    GgufWriter bad;
    bad.set_alignment(64);
    bad.add_tensor(f32_spec("t", {8}, 32));
    expect_corrupt(write_gguf(dir, "misaligned64.gguf", bad), {"tensor 't'", "offset 32", "alignment 64"});
  }
  SECTION("an alignment that is not a power of two") {
    GgufWriter bad;
    bad.set_alignment(48);
    expect_corrupt(write_gguf(dir, "align48.gguf", bad), {"general.alignment", "power of two"});
  }
  SECTION("an alignment of another type") {
    GgufWriter bad;
    bad.add("general.alignment", GgufValue::u64(32));
    expect_corrupt(write_gguf(dir, "align_u64.gguf", bad), {"general.alignment", "uint32"});
  }
}

TEST_CASE("gguf rejects each defect with an error naming the file and the key or tensor", "[gguf]") {
  cc::testing::TempDir dir;

  SECTION("a missing file") {
    expect_error([&] { (void)cc::GgufFile::open(dir / "absent.gguf"); }, ErrorKind::kNotFound, {"absent.gguf"});
  }
  SECTION("bad magic") {
    std::string bytes = cc::testing::sample_gguf().bytes();
    bytes[3] = 'X';
    expect_corrupt(write_bytes(dir, "magic.gguf", bytes), {"magic"});
    expect_corrupt(write_bytes(dir, "empty.gguf", ""), {"magic"});
  }
  SECTION("unsupported versions") {
    for (std::uint32_t v : {1u, 4u, 0xFFFFFFFFu}) {
      expect_corrupt(write_bytes(dir, "v.gguf", header(0, 0, v)), {"version " + std::to_string(v)});
    }
  }
  SECTION("a truncated header") {
    expect_corrupt(write_bytes(dir, "short.gguf", header(0, 0).substr(0, 10)), {"tensor count"});
    expect_corrupt(write_bytes(dir, "short2.gguf", header(0, 0).substr(0, 20)), {"metadata count"});
  }
  SECTION("every truncated copy of a valid file") {
    GgufWriter w = cc::testing::sample_gguf();
    w.add_f32_tensor("last", {8}, std::vector<float>(8, 1.f));  // 32 bytes: no padding after it
    const std::string bytes = w.bytes();
    (void)cc::GgufFile::open(write_bytes(dir, "full.gguf", bytes));
    for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
      INFO("cut at " << cut << " of " << bytes.size());
      const auto path = write_bytes(dir, "cut.gguf", bytes.substr(0, cut));
      try {
        (void)cc::GgufFile::open(path);
        FAIL("a file cut at " << cut << " opened");
      } catch (const cc::Error& e) {
        CHECK(e.kind() == ErrorKind::kCorruptInput);
        CHECK_THAT(e.what(), Catch::Matchers::Contains(path.string()));
      }
    }
  }
  SECTION("absurd counts fail before anything is reserved") {
    expect_corrupt(write_bytes(dir, "kvs.gguf", header(0, 1ull << 60)), {"1152921504606846976 metadata entries"});
    expect_corrupt(write_bytes(dir, "tensors.gguf", header(1ull << 60, 0)), {"1152921504606846976 tensors"});
    expect_corrupt(write_bytes(dir, "max.gguf", header(~0ull, ~0ull)), {"metadata entries"});
  }
  SECTION("a string length past the end") {
    expect_corrupt(write_bytes(dir, "key.gguf", header(0, 1) + le_u64(1ull << 62) + std::string(20, 'x')), {"metadata entry 0", "string length"});
    GgufWriter w;
    w.add("general.name", GgufValue::raw(8, le_u64(1000) + "short"));  // a string (type 8)
    expect_corrupt(write_gguf(dir, "value.gguf", w), {"general.name", "string length 1000"});
    GgufWriter t;
    t.add_tensor(f32_spec("x", {4}));
    std::string bytes = t.bytes();
    const std::size_t name_len_at = header(0, 0).size();
    std::memcpy(&bytes[name_len_at], le_u64(1ull << 40).data(), 8);
    expect_corrupt(write_bytes(dir, "name.gguf", bytes), {"tensor info 0", "string length"});
  }
  SECTION("array lengths past the end, however large") {
    GgufWriter a;
    a.add("tok.ids", GgufValue::raw(9, le_u32(10) + le_u64(1ull << 60) + le_u64(7)));  // u64 elements
    expect_corrupt(write_gguf(dir, "u64s.gguf", a), {"tok.ids", "1152921504606846976 uint64"});
    GgufWriter b;
    b.add("tokenizer.ggml.tokens", GgufValue::raw(9, le_u32(8) + le_u64(1ull << 60) + gguf_string("a")));
    expect_corrupt(write_gguf(dir, "strings.gguf", b), {"tokenizer.ggml.tokens", "string values"});
    GgufWriter c;  // 3 u32 need 12 bytes; 8 are there
    c.add("small", GgufValue::raw(9, le_u32(4) + le_u64(3) + le_u64(0)));
    expect_corrupt(write_gguf(dir, "small.gguf", c), {"small", "3 uint32"});
    GgufWriter d;
    d.add("arrays", GgufValue::raw(9, le_u32(9) + le_u64(~0ull)));
    expect_corrupt(write_gguf(dir, "arrays.gguf", d), {"arrays", "array values"});
  }
  SECTION("duplicate keys and tensor names") {
    GgufWriter k;
    k.add("general.name", GgufValue::string("a"));
    k.add("general.name", GgufValue::string("b"));
    expect_corrupt(write_gguf(dir, "dupkey.gguf", k), {"general.name", "duplicate key"});
    GgufWriter t;
    t.add_tensor(f32_spec("blk.0.w", {8}));
    t.add_tensor(f32_spec("blk.0.w", {8}));
    expect_corrupt(write_gguf(dir, "duptensor.gguf", t), {"blk.0.w", "duplicate tensor"});
  }
  SECTION("unknown value types, in a value and in an array") {
    GgufWriter v;
    v.add("odd.key", GgufValue::raw(13, le_u32(0)));
    expect_corrupt(write_gguf(dir, "type13.gguf", v), {"odd.key", "unknown value type 13"});
    GgufWriter a;
    a.add("odd.array", GgufValue::raw(9, le_u32(99) + le_u64(1) + le_u32(0)));
    expect_corrupt(write_gguf(dir, "type99.gguf", a), {"odd.array", "unknown value type 99"});
  }
  SECTION("a bool that is neither 0 nor 1") {
    GgufWriter v;
    v.add("flag", GgufValue::raw(7, std::string(1, '\2')));
    expect_corrupt(write_gguf(dir, "bool.gguf", v), {"flag", "bool"});
  }
  SECTION("arrays nested without end") {
    std::string payload = le_u32(0) + le_u64(0);
    for (int i = 0; i < 40; ++i) payload = le_u32(9) + le_u64(1) + payload;
    GgufWriter v;
    v.add("deep", GgufValue::raw(9, payload));
    expect_corrupt(write_gguf(dir, "deep.gguf", v), {"deep", "nested"});
  }
  SECTION("tensor data past the end of the file") {
    GgufWriter w;
    w.add_tensor(f32_spec("blk.1.w", {8}, 1ull << 20));
    expect_corrupt(write_gguf(dir, "past.gguf", w), {"blk.1.w", "past the end"});
    GgufWriter huge;  // an offset near 2^64: offset + bytes must not wrap around
    huge.add_tensor(f32_spec("blk.2.w", {8}, ~0ull - 31));
    expect_corrupt(write_gguf(dir, "wrap.gguf", huge), {"blk.2.w", "past the end"});
  }
  SECTION("a misaligned offset") {
    GgufWriter w;
    w.add_tensor(f32_spec("blk.3.w", {8}, 4));
    expect_corrupt(write_gguf(dir, "misaligned.gguf", w), {"blk.3.w", "not a multiple of the alignment 32"});
  }
  SECTION("overlapping tensors") {
    GgufWriter w;
    w.add_tensor(f32_spec("first", {16}));
    w.add_tensor(f32_spec("second", {16}, 32));  // first spans [0, 64)
    expect_corrupt(write_gguf(dir, "overlap.gguf", w), {"first", "second", "overlap"});
  }
  SECTION("bad dimensions") {
    GgufWriter five;
    five.add_tensor(f32_spec("t5", {1, 1, 1, 1, 1}));
    expect_corrupt(write_gguf(dir, "dims5.gguf", five), {"t5", "5 dimensions"});
    GgufWriter zero_dims;
    zero_dims.add_tensor(GgufTensorSpec{"t0", {}, 0, std::string(4, '\0'), std::nullopt});
    expect_corrupt(write_gguf(dir, "dims0.gguf", zero_dims), {"t0", "0 dimensions"});
    GgufWriter zero;
    zero.add_tensor(GgufTensorSpec{"tz", {4, 0}, 0, "", std::nullopt});
    expect_corrupt(write_gguf(dir, "zero.gguf", zero), {"tz", "dimension 1 is 0"});
    GgufWriter negative;
    negative.add_tensor(GgufTensorSpec{"tn", {0x8000000000000001ull}, 0, "", std::nullopt});
    expect_corrupt(write_gguf(dir, "negative.gguf", negative), {"tn", "dimension 0 is -"});
    GgufWriter overflow;
    overflow.add_tensor(GgufTensorSpec{"to", {1ull << 32, 1ull << 32}, 0, "", std::nullopt});
    expect_corrupt(write_gguf(dir, "overflow.gguf", overflow), {"to", "overflows"});
    GgufWriter bytes_overflow;  // 2^62 F64 values fit int64 but their 2^65 bytes do not
    bytes_overflow.add_tensor(GgufTensorSpec{"tb", {1ull << 62}, type_of(GgmlType::kF64), "", std::nullopt});
    expect_corrupt(write_gguf(dir, "bytes_overflow.gguf", bytes_overflow), {"tb", "overflows"});
  }
  SECTION("a row that is not a whole number of blocks") {
    GgufWriter w;
    w.add_tensor(GgufTensorSpec{"blk.0.attn_q.weight", {48, 2}, type_of(GgmlType::kQ4_0), std::string(18 * 3, '\0'), std::nullopt});
    expect_corrupt(write_gguf(dir, "row.gguf", w), {"blk.0.attn_q.weight", "row length 48", "Q4_0"});
    GgufWriter k;
    k.add_tensor(GgufTensorSpec{"k", {128}, type_of(GgmlType::kQ4_K), std::string(144, '\0'), std::nullopt});
    expect_corrupt(write_gguf(dir, "rowk.gguf", k), {"'k'", "row length 128", "Q4_K"});
  }
}

TEST_CASE("gguf opens tensors of types it cannot dequantize and names them on use", "[gguf]") {
  cc::testing::TempDir dir;
  GgufWriter w;
  w.add_tensor(GgufTensorSpec{"future", {64}, 200, std::string(64, '\0'), std::nullopt});
  w.add_tensor(GgufTensorSpec{"iq", {256}, 16, std::string(66, '\0'), std::nullopt});  // IQ2_XXS
  w.add_f32_tensor("fine", {2}, {1.f, 2.f});
  const auto file = cc::GgufFile::open(write_gguf(dir, "types.gguf", w));
  CHECK(file.tensor("future").type == 200);
  CHECK(file.tensor("iq").bytes == 66);
  expect_error([&] { (void)file.dequantize("future"); }, ErrorKind::kUnsupported, {"'future'", "type 200", "types.gguf"});
  expect_error([&] { (void)file.dequantize("iq"); }, ErrorKind::kUnsupported, {"'iq'", "IQ2_XXS"});
  CHECK(at::equal(file.dequantize("fine"), at::tensor({1.f, 2.f})));
  CHECK(cc::ggml_type_name(200) == "type 200");
  CHECK(cc::ggml_type_name(12) == "Q4_K");
  CHECK(cc::ggml_type_traits(16) == nullptr);
  REQUIRE(cc::ggml_type_traits(14) != nullptr);
  CHECK(cc::ggml_type_traits(14)->block_elements == 256);
  CHECK(cc::ggml_type_traits(14)->block_bytes == 210);
  float out[32];
  expect_error([&] { cc::dequantize_ggml(16, nullptr, 256, out); }, ErrorKind::kUnsupported, {"IQ2_XXS"});
  expect_error([&] { cc::dequantize_ggml(8, nullptr, 31, out); }, ErrorKind::kInvalidArgument, {"Q8_0"});
}

TEST_CASE("is_gguf_file looks at the magic only", "[gguf]") {
  cc::testing::TempDir dir;
  CHECK(cc::is_gguf_file(write_gguf(dir, "a.gguf", cc::testing::sample_gguf())));
  CHECK_FALSE(cc::is_gguf_file(write_bytes(dir, "b.bin", "GGU")));
  CHECK_FALSE(cc::is_gguf_file(write_bytes(dir, "c.bin", "\x08\0\0\0\0\0\0\0{}")));
  CHECK_FALSE(cc::is_gguf_file(dir / "missing"));
}

TEST_CASE("the real SmolLM2 GGUF opens and dequantizes", "[gguf][model]") {
  const fs::path path = model_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(path)) {
    cc::testing::skip_test(path.string() + " not found (set CC_MODEL_DIR; scripts/fetch_models.sh)");
    return;
  }
  const auto file = cc::GgufFile::open(path);
  CHECK(file.required_string("general.architecture") == "llama");
  CHECK(file.required_int("llama.block_count") == 30);
  CHECK(file.required_int("llama.embedding_length") == 576);
  CHECK(file.metadata()["tokenizer.ggml.tokens"].size() == 49152);
  CHECK(file.required_string("tokenizer.ggml.pre") == "smollm");
  const at::Tensor embed = file.dequantize("token_embd.weight");
  CHECK(embed.sizes() == at::IntArrayRef({49152, 576}));
  CHECK(at::isfinite(embed).all().item<bool>());
}

// Run by tests/cli/gguf_reference.cmake, which first writes the files with gguf-py.
TEST_CASE("gguf dequantization of every type is bit-equal to gguf-py", "[.gguf_reference]") {
  const char* env = std::getenv("CC_GGUF_REFERENCE_DIR");
  if (env == nullptr) {
    cc::testing::skip_test("CC_GGUF_REFERENCE_DIR is not set (ctest -R gguf.dequantize_matches_gguf_py sets it)");
    return;
  }
  const fs::path dir(env);
  const json ref = json::parse(cc::read_file(dir / "reference.json"));
  const auto file = cc::GgufFile::open(dir / "reference.gguf");
  const auto expected = cc::SafetensorsFile::open(dir / "reference.safetensors");

  // Metadata written by gguf-py's GGUFWriter: every value type, nested arrays.
  CHECK(file.metadata().size() == ref["metadata"].size());
  for (const auto& [key, entry] : ref["metadata"].items()) {
    INFO("key " << key);
    REQUIRE(file.has(key));
    CHECK(static_cast<int>(file.value_type(key)) == entry["type"].get<int>());
    CHECK(file.metadata()[key] == entry["value"]);
  }

  std::set<std::string> covered;
  CHECK(file.tensors().size() == ref["types"].size());
  for (const auto& [name, type] : ref["types"].items()) {
    INFO("tensor " << name << " (" << type.get<std::string>() << ")");
    CHECK(cc::ggml_type_name(file.tensor(name).type) == type.get<std::string>());
    const at::Tensor ours = file.dequantize(name);
    const at::Tensor theirs = expected.load(name);
    REQUIRE(ours.sizes() == theirs.sizes());
    // Every formula follows ggml's operation order, so no rounding difference is allowed.
    CHECK(max_ulps(ours, theirs) == 0);
    covered.insert(type.get<std::string>());
  }
  for (const char* t : {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
                        "Q6_K", "Q8_K", "I8", "I16", "I32", "I64", "F64"})
    CHECK(covered.count(t) == 1);
  // And every type with a dequantizer is covered.
  for (std::uint32_t t = 0; t < 64; ++t)
    if (cc::ggml_type_traits(t) != nullptr) CHECK(covered.count(cc::ggml_type_name(t)) == 1);
}

// Run by tests/cli/gguf_reference.cmake, which first reads the model with gguf-py.
TEST_CASE("every tensor and key of the real SmolLM2 GGUF matches gguf-py", "[.gguf_model_reference]") {
  const char* env = std::getenv("CC_GGUF_MODEL_REFERENCE");
  if (env == nullptr) {
    cc::testing::skip_test("CC_GGUF_MODEL_REFERENCE is not set (ctest -R gguf.smollm2_matches_gguf_py sets it)");
    return;
  }
  const json ref = json::parse(cc::read_file(env));
  const auto file = cc::GgufFile::open(ref["model"].get<std::string>());

  CHECK(file.metadata().size() == ref["metadata"].size());
  for (const auto& [key, entry] : ref["metadata"].items()) {
    INFO("key " << key);
    REQUIRE(file.has(key));
    CHECK(static_cast<int>(file.value_type(key)) == entry["type"].get<int>());
    CHECK(file.metadata()[key] == entry["value"]);
  }

  REQUIRE(file.tensors().size() == ref["tensors"].size());
  for (const auto& info : file.tensors()) {
    INFO("tensor " << info.name);
    REQUIRE(ref["tensors"].contains(info.name));
    const json& r = ref["tensors"][info.name];
    CHECK(cc::ggml_type_name(info.type) == r["type"].get<std::string>());
    CHECK(info.shape == r["shape"].get<std::vector<std::int64_t>>());
    const auto bits = float_bits(file.dequantize(info.name));
    // Exact checksums of the float32 bit patterns (mod 2^64), as the script computes them.
    std::uint64_t total = 0, weighted = 0;
    for (std::size_t i = 0; i < bits.size(); ++i) {
      total += bits[i];
      weighted += static_cast<std::uint64_t>(bits[i]) * static_cast<std::uint64_t>(i + 1);
    }
    const auto first = r["first"].get<std::vector<float>>();
    for (std::size_t i = 0; i < first.size(); ++i) {
      float ours;
      std::memcpy(&ours, &bits[i], 4);
      CHECK(ours == first[i]);
    }
    CHECK(total == r["sum_bits"].get<std::uint64_t>());
    CHECK(weighted == r["weighted_bits"].get<std::uint64_t>());
  }
}
