// safetensors: round trips for every dtype LibTorch holds, and a corrupt-file catalogue
// where each defect must produce its own error naming the file and the tensor.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/files.h"
#include "cushioncache/io/safetensors.h"
#include "support/test_support.h"

namespace cc = cushioncache;
namespace fs = std::filesystem;

namespace {

// Builds a file byte by byte: header JSON as given, then `data`.
void write_raw(const fs::path& path, const std::string& header, const std::string& data, std::uint64_t claimed_len = 0) {
  std::ofstream out(path, std::ios::binary);
  const std::uint64_t len = claimed_len ? claimed_len : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((len >> (8 * i)) & 0xff));
  out << header << data;
}

}  // namespace

TEST_CASE("safetensors round-trips every dtype, shape and metadata", "[safetensors]") {
  cc::testing::TempDir dir;
  at::Generator gen = at::detail::createCPUGenerator(5);
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"f32", at::randn({3, 5}, gen, at::kFloat)},
      {"f64", at::randn({4}, gen, at::kDouble)},
      {"f16", at::randn({2, 3, 2}, gen, at::kFloat).to(at::kHalf)},
      {"bf16", at::randn({7}, gen, at::kFloat).to(at::kBFloat16)},
      {"i64", at::arange(-3, 9, at::kLong)},
      {"i32", at::arange(0, 6, at::kInt).view({2, 3})},
      {"i8", at::arange(-128, 128, at::kShort).to(at::kChar)},
      {"u8", at::arange(0, 256, at::kShort).to(at::kByte)},
      {"bool", at::tensor({1, 0, 1}, at::kLong).to(at::kBool)},
      {"scalar", at::tensor(3.5, at::kFloat).view({})},
      {"empty", at::zeros({0, 4}, at::kFloat)},
      {"strided", at::arange(0, 12, at::kFloat).view({3, 4}).t()},  // written contiguous
  };
  const fs::path path = dir / "all.safetensors";
  cc::write_safetensors(path, tensors, {{"format", "pt"}, {"note", "round trip"}});

  const cc::SafetensorsFile file = cc::SafetensorsFile::open(path);
  CHECK(file.metadata().at("note") == "round trip");
  CHECK(file.names().size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    INFO(name);
    at::Tensor back = file.load(name);
    CHECK(back.scalar_type() == t.scalar_type());
    CHECK(back.sizes() == t.sizes());
    CHECK(at::equal(back, t.contiguous()));
  }
  CHECK(file.entry("bf16").dtype == "BF16");
  // The data area starts 8-byte aligned, so every tensor can be viewed in place.
  const std::string bytes = cc::read_file(path);
  std::uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  CHECK((8 + header_len) % 8 == 0);
}

TEST_CASE("views read the memory map without a copy and never change the file", "[safetensors]") {
  cc::testing::TempDir dir;
  const auto path = dir / "w.safetensors";
  const at::Tensor expected = at::arange(12, at::kFloat).view({3, 4});
  // "odd" (6 bytes of bfloat16) puts "late" at a 2-byte offset: not aligned for float32.
  cc::write_safetensors(path, {{"a", expected}, {"odd", at::ones({3}, at::kBFloat16)}, {"late", expected}});
  at::Tensor a;
  {
    const cc::SafetensorsFile file = cc::SafetensorsFile::open(path);
    a = file.view("a");
    CHECK(file.view("a").data_ptr() == a.data_ptr());  // both are the mapping itself
    CHECK(file.load("a").data_ptr() != a.data_ptr());
    const at::Tensor late = file.view("late");         // misaligned: a copy, the same values
    CHECK(reinterpret_cast<std::uintptr_t>(late.data_ptr()) % 4 == 0);
    CHECK(at::equal(late, expected));
  }
  // The view outlives the file object; writing through it stays in this process.
  CHECK(at::equal(a, expected));
  a.mul_(2);
  CHECK(at::equal(cc::SafetensorsFile::open(path).load("a"), expected));
  std::filesystem::remove(path);  // and the mapping survives the file's removal
  CHECK(at::equal(a, expected * 2));
}

TEST_CASE("safetensors writes are atomic", "[safetensors]") {
  cc::testing::TempDir dir;
  const fs::path path = dir / "model.safetensors";
  cc::write_safetensors(path, {{"a", at::ones({2})}});
  const std::string before = cc::read_file(path);
  cc::testing::expect_error([&] { cc::write_safetensors(path, {{"b", at::ones({3})}, {"b", at::ones({1})}}); },
                            cc::ErrorKind::kInvalidArgument, {"'b'", "twice", "model.safetensors"});
  cc::testing::expect_error(
      [&] {
        cc::write_file_atomically(path, [](std::ostream& out) {
          out << "partial";
          throw cc::Error(cc::ErrorKind::kInterrupted, "killed mid-write");
        });
      },
      cc::ErrorKind::kInterrupted, {"killed mid-write"});
  CHECK(cc::read_file(path) == before);
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) files += e.is_regular_file();
  CHECK(files == 1);  // no temporary left behind
}

// A process killed mid-write gets no chance to clean up: the file it was replacing must
// still be the previous version, whole (only an orphaned temporary is left beside it).
TEST_CASE("a write killed with SIGKILL leaves the previous file intact", "[safetensors][reliability]") {
  cc::testing::TempDir dir;
  const fs::path path = dir / "artifact.safetensors";
  cc::write_safetensors(path, {{"kv", at::arange(1000, at::kFloat)}});
  const std::string before = cc::read_file(path);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Half of a larger replacement reaches the disk, then the process dies.
    cc::write_file_atomically(path, [](std::ostream& out) {
      out << std::string(1 << 20, 'x');
      out.flush();
      ::raise(SIGKILL);
    });
    ::_exit(0);  // not reached
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  CHECK(cc::read_file(path) == before);
  CHECK(cc::SafetensorsFile::open(path).load("kv").equal(at::arange(1000, at::kFloat)));
}

TEST_CASE("corrupt safetensors files give errors that name the file and tensor", "[safetensors][errors]") {
  cc::testing::TempDir dir;
  const fs::path path = dir / "bad.safetensors";
  const std::string data(16, '\0');
  auto open = [&] { cc::SafetensorsFile::open(path); };
  using K = cc::ErrorKind;

  SECTION("shorter than the length field") {
    std::ofstream(path, std::ios::binary) << "abc";
    cc::testing::expect_error(open, K::kCorruptInput, {"bad.safetensors", "too short"});
  }
  SECTION("header length past the end") {
    write_raw(path, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data, 1u << 20);
    cc::testing::expect_error(open, K::kCorruptInput, {"bad.safetensors", "header length", "past the end"});
  }
  SECTION("truncated data") {
    write_raw(path, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data.substr(0, 10));
    cc::testing::expect_error(open, K::kCorruptInput, {"bad.safetensors", "'w'", "past the data area"});
  }
  SECTION("overlapping offsets") {
    write_raw(path,
              R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
              data);
    cc::testing::expect_error(open, K::kCorruptInput, {"bad.safetensors", "'a'", "'b'", "overlap"});
  }
  SECTION("unknown dtype") {
    write_raw(path, R"({"w":{"dtype":"F12","shape":[4],"data_offsets":[0,16]}})", data);
    cc::testing::expect_error(open, K::kCorruptInput, {"bad.safetensors", "'w'", "unknown dtype 'F12'"});
  }
  SECTION("shape inconsistent with byte size") {
    write_raw(path, R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data);
    cc::testing::expect_error(open, K::kCorruptInput, {"bad.safetensors", "'w'", "needs 12 bytes", "span 16"});
  }
  SECTION("bad JSON") {
    write_raw(path, R"({"w":{"dtype":"F32",)", data);
    cc::testing::expect_error(open, K::kCorruptInput, {"bad.safetensors", "not valid JSON"});
  }
  SECTION("wrong field types") {
    write_raw(path, R"({"w":{"dtype":"F32","shape":"4","data_offsets":[0,16]}})", data);
    cc::testing::expect_error(open, K::kCorruptInput, {"'w'", "shape"});
    write_raw(path, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}})", data);
    cc::testing::expect_error(open, K::kCorruptInput, {"'w'", "reversed"});
  }
  SECTION("missing file and missing tensor") {
    cc::testing::expect_error(open, K::kNotFound, {"bad.safetensors"});
    cc::write_safetensors(path, {{"present", at::ones({1})}});
    cc::testing::expect_error([&] { cc::SafetensorsFile::open(path).load("absent"); }, K::kNotFound, {"bad.safetensors", "'absent'"});
  }
  SECTION("a dtype this LibTorch cannot hold is reported when loaded") {
    write_raw(path, R"({"w":{"dtype":"F8_E4M3","shape":[16],"data_offsets":[0,16]}})", data);
    auto file = cc::SafetensorsFile::open(path);
    cc::testing::expect_error([&] { file.load("w"); }, K::kUnsupported, {"'w'", "F8_E4M3"});
  }
}

TEST_CASE("sharded checkpoints are checked against their index", "[safetensors][errors]") {
  cc::testing::TempDir dir;
  cc::write_safetensors(dir / "model-00001-of-00002.safetensors", {{"a", at::ones({2})}});
  cc::write_safetensors(dir / "model-00002-of-00002.safetensors", {{"b", at::zeros({3})}});
  auto write_index = [&](const nlohmann::json& map) {
    std::ofstream(dir / "model.safetensors.index.json") << nlohmann::json{{"weight_map", map}}.dump();
  };
  write_index({{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}});
  auto ckpt = cc::SafetensorsCheckpoint::open(dir.path());
  CHECK(ckpt.names() == std::vector<std::string>{"a", "b"});
  CHECK(at::equal(ckpt.load("b"), at::zeros({3})));

  write_index({{"a", "model-00001-of-00002.safetensors"}, {"c", "model-00002-of-00002.safetensors"}});
  cc::testing::expect_error([&] { cc::SafetensorsCheckpoint::open(dir.path()); }, cc::ErrorKind::kCorruptInput,
                            {"model.safetensors.index.json", "'c'", "no such tensor"});
  write_index({{"a", "model-00009-of-00009.safetensors"}});
  cc::testing::expect_error([&] { cc::SafetensorsCheckpoint::open(dir.path()); }, cc::ErrorKind::kNotFound,
                            {"model-00009-of-00009.safetensors"});
  write_index({{"a", "../elsewhere.safetensors"}});
  cc::testing::expect_error([&] { cc::SafetensorsCheckpoint::open(dir.path()); }, cc::ErrorKind::kCorruptInput, {"not a file name"});
  // Fuzzer finding: a number no JSON type can hold escaped the parser as an internal error.
  std::ofstream(dir / "model.safetensors.index.json") << R"({"metadata": {"total_size": 57e777777}, "weight_map": {}})";
  cc::testing::expect_error([&] { cc::SafetensorsCheckpoint::open(dir.path()); }, cc::ErrorKind::kCorruptInput,
                            {"model.safetensors.index.json", "invalid JSON"});
}
