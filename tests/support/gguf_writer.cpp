#include "support/gguf_writer.h"

#include <cstring>
#include <fstream>
#include <stdexcept>

#include <c10/util/Half.h>

namespace cushioncache::testing {
namespace {

template <typename T>
std::string le(T v) {
  // Tests run on little-endian hosts only, as does the reader.
  std::string out(sizeof(T), '\0');
  std::memcpy(out.data(), &v, sizeof(T));
  return out;
}

GgufValue make(GgufValueType type, std::string payload) {
  return GgufValue{static_cast<std::uint32_t>(type), std::move(payload)};
}

std::string half_bytes(float v) { return le<std::uint16_t>(c10::Half(v).x); }

}  // namespace

std::string le_u32(std::uint32_t v) { return le(v); }
std::string le_u64(std::uint64_t v) { return le(v); }
std::string gguf_string(const std::string& s) { return le<std::uint64_t>(s.size()) + s; }

GgufValue GgufValue::u8(std::uint8_t v) { return make(GgufValueType::kUint8, le(v)); }
GgufValue GgufValue::i8(std::int8_t v) { return make(GgufValueType::kInt8, le(v)); }
GgufValue GgufValue::u16(std::uint16_t v) { return make(GgufValueType::kUint16, le(v)); }
GgufValue GgufValue::i16(std::int16_t v) { return make(GgufValueType::kInt16, le(v)); }
GgufValue GgufValue::u32(std::uint32_t v) { return make(GgufValueType::kUint32, le(v)); }
GgufValue GgufValue::i32(std::int32_t v) { return make(GgufValueType::kInt32, le(v)); }
GgufValue GgufValue::u64(std::uint64_t v) { return make(GgufValueType::kUint64, le(v)); }
GgufValue GgufValue::i64(std::int64_t v) { return make(GgufValueType::kInt64, le(v)); }
GgufValue GgufValue::f32(float v) { return make(GgufValueType::kFloat32, le(v)); }
GgufValue GgufValue::f64(double v) { return make(GgufValueType::kFloat64, le(v)); }
GgufValue GgufValue::boolean(bool v) { return make(GgufValueType::kBool, std::string(1, v ? '\1' : '\0')); }
GgufValue GgufValue::string(const std::string& v) { return make(GgufValueType::kString, gguf_string(v)); }

GgufValue GgufValue::array(GgufValueType element, const std::vector<GgufValue>& items) {
  std::string payload = le_u32(static_cast<std::uint32_t>(element)) + le_u64(items.size());
  for (const auto& item : items) {
    if (item.type != static_cast<std::uint32_t>(element)) throw std::invalid_argument("array item of another type");
    payload += item.payload;
  }
  return make(GgufValueType::kArray, std::move(payload));
}

GgufValue GgufValue::strings(const std::vector<std::string>& items) {
  std::vector<GgufValue> values;
  for (const auto& s : items) values.push_back(string(s));
  return array(GgufValueType::kString, values);
}

GgufValue GgufValue::raw(std::uint32_t type, std::string payload) { return GgufValue{type, std::move(payload)}; }

void GgufWriter::add(const std::string& key, GgufValue value) { kvs_.emplace_back(key, std::move(value)); }

void GgufWriter::set_alignment(std::uint32_t a) {
  alignment = a;
  add("general.alignment", GgufValue::u32(a));
}

void GgufWriter::add_tensor(GgufTensorSpec tensor) { tensors_.push_back(std::move(tensor)); }

void GgufWriter::add_f32_tensor(const std::string& name, const std::vector<std::int64_t>& shape,
                                const std::vector<float>& values) {
  GgufTensorSpec t;
  t.name = name;
  for (auto it = shape.rbegin(); it != shape.rend(); ++it) t.ne.push_back(static_cast<std::uint64_t>(*it));
  t.type = static_cast<std::uint32_t>(GgmlType::kF32);
  t.data.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  add_tensor(std::move(t));
}

std::string GgufWriter::bytes() const {
  auto pad = [&](std::string& s) { s.append((alignment - s.size() % alignment) % alignment, '\0'); };
  std::string out = "GGUF" + le_u32(version) + le_u64(tensors_.size()) + le_u64(kvs_.size());
  for (const auto& [key, value] : kvs_) out += gguf_string(key) + le_u32(value.type) + value.payload;
  std::string data;
  for (const auto& t : tensors_) {
    out += gguf_string(t.name) + le_u32(static_cast<std::uint32_t>(t.ne.size()));
    for (auto d : t.ne) out += le_u64(d);
    const std::uint64_t natural = data.size();
    out += le_u32(t.type) + le_u64(t.offset.value_or(natural));
    data += t.data;
    pad(data);
  }
  if (!tensors_.empty()) {
    pad(out);
    out += data;
  }
  return out;
}

void GgufWriter::write(const std::filesystem::path& path) const {
  const std::string b = bytes();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

GgufWriter sample_gguf() {
  GgufWriter w;
  w.add("general.architecture", GgufValue::string("llama"));
  w.add("test.u8", GgufValue::u8(200));
  w.add("test.i8", GgufValue::i8(-100));
  w.add("test.u16", GgufValue::u16(60000));
  w.add("test.i16", GgufValue::i16(-30000));
  w.add("test.u32", GgufValue::u32(4000000000u));
  w.add("test.i32", GgufValue::i32(-2000000000));
  w.add("test.u64", GgufValue::u64(18446744073709551615ull));
  w.add("test.i64", GgufValue::i64(-9223372036854775807ll));
  w.add("test.f32", GgufValue::f32(0.1f));
  w.add("test.f64", GgufValue::f64(-2.5e-300));
  w.add("test.bool", GgufValue::boolean(true));
  // Tokens are arbitrary bytes, not necessarily UTF-8.
  w.add("test.string", GgufValue::string(std::string("h\xc3\xa9llo \xff\x00!", 10)));
  w.add("test.tokens", GgufValue::strings({"<s>", "", "\xe2\x96\x81the", std::string("\x80", 1)}));
  w.add("test.floats", GgufValue::array(GgufValueType::kFloat32, {GgufValue::f32(1.5f), GgufValue::f32(-0.25f)}));
  w.add("test.empty", GgufValue::array(GgufValueType::kInt32, {}));
  w.add("test.nested",
        GgufValue::array(GgufValueType::kArray,
                         {GgufValue::array(GgufValueType::kUint8, {GgufValue::u8(1), GgufValue::u8(2)}),
                          GgufValue::strings({"a", "bc"}),
                          GgufValue::array(GgufValueType::kArray, {GgufValue::array(GgufValueType::kBool, {GgufValue::boolean(false)})})}));
  w.add_f32_tensor("weight", {2, 3}, {1.f, -2.f, 3.5f, 0.f, -0.125f, 1e30f});
  GgufTensorSpec f16{"half", {4}, static_cast<std::uint32_t>(GgmlType::kF16), "", std::nullopt};
  for (float v : {1.f, -0.5f, 65504.f, 0.000061035156f}) f16.data += half_bytes(v);
  w.add_tensor(f16);
  // One Q8_0 block: scale 0.5, values -16..15.
  GgufTensorSpec q8{"q8", {32}, static_cast<std::uint32_t>(GgmlType::kQ8_0), half_bytes(0.5f), std::nullopt};
  for (int i = 0; i < 32; ++i) q8.data += static_cast<char>(static_cast<std::int8_t>(i - 16));
  w.add_tensor(q8);
  return w;
}

}  // namespace cushioncache::testing
