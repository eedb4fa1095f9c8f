#include "cushioncache/io/gguf.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Half.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"

namespace cushioncache {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::uint32_t kMaxDims = 4;  // GGML_MAX_DIMS
constexpr std::uint64_t kDefaultAlignment = 32;
// Arrays of arrays recurse; a file of nested array headers must not exhaust the stack.
constexpr int kMaxArrayDepth = 16;
constexpr std::int64_t kQK = 256;  // QK_K: the super-block of the K-quants

// Types we dequantize, and types we only know the size of: a tensor of the latter is still
// checked against the file's end and its neighbours, and fails only when dequantized.
struct TypeRow {
  std::uint32_t id;
  const char* name;
  std::int64_t block_elements;
  std::int64_t block_bytes;
  bool dequantizable;
};

const TypeRow kTypes[] = {
    {0, "F32", 1, 4, true},       {1, "F16", 1, 2, true},         {2, "Q4_0", 32, 18, true},
    {3, "Q4_1", 32, 20, true},    {6, "Q5_0", 32, 22, true},      {7, "Q5_1", 32, 24, true},
    {8, "Q8_0", 32, 34, true},    {9, "Q8_1", 32, 36, false},      {10, "Q2_K", kQK, 84, true},
    {11, "Q3_K", kQK, 110, true}, {12, "Q4_K", kQK, 144, true},   {13, "Q5_K", kQK, 176, true},
    {14, "Q6_K", kQK, 210, true}, {15, "Q8_K", kQK, 292, true},   {16, "IQ2_XXS", kQK, 66, false},
    {17, "IQ2_XS", kQK, 74, false}, {18, "IQ3_XXS", kQK, 98, false}, {19, "IQ1_S", kQK, 50, false},
    {20, "IQ4_NL", 32, 18, false}, {21, "IQ3_S", kQK, 110, false}, {22, "IQ2_S", kQK, 82, false},
    {23, "IQ4_XS", kQK, 136, false}, {24, "I8", 1, 1, true},      {25, "I16", 1, 2, true},
    {26, "I32", 1, 4, true},      {27, "I64", 1, 8, true},        {28, "F64", 1, 8, true},
    {29, "IQ1_M", kQK, 56, false}, {30, "BF16", 1, 2, true},      {34, "TQ1_0", kQK, 54, false},
    {35, "TQ2_0", kQK, 66, false}, {39, "MXFP4", 32, 17, false},   {40, "NVFP4", 64, 36, false},
    {41, "Q1_0", 128, 18, false},
};

const TypeRow* find_type(std::uint32_t id) {
  for (const auto& t : kTypes)
    if (t.id == id) return &t;
  return nullptr;
}

const char* value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8: return "uint8";
    case GgufValueType::kInt8: return "int8";
    case GgufValueType::kUint16: return "uint16";
    case GgufValueType::kInt16: return "int16";
    case GgufValueType::kUint32: return "uint32";
    case GgufValueType::kInt32: return "int32";
    case GgufValueType::kFloat32: return "float32";
    case GgufValueType::kBool: return "bool";
    case GgufValueType::kString: return "string";
    case GgufValueType::kArray: return "array";
    case GgufValueType::kUint64: return "uint64";
    case GgufValueType::kInt64: return "int64";
    case GgufValueType::kFloat64: return "float64";
  }
  return "?";
}

// Bytes one value of a scalar type takes; 0 for string and array (variable).
std::uint64_t scalar_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8: case GgufValueType::kInt8: case GgufValueType::kBool: return 1;
    case GgufValueType::kUint16: case GgufValueType::kInt16: return 2;
    case GgufValueType::kUint32: case GgufValueType::kInt32: case GgufValueType::kFloat32: return 4;
    case GgufValueType::kUint64: case GgufValueType::kInt64: case GgufValueType::kFloat64: return 8;
    default: return 0;
  }
}

// The least bytes an element of this type can occupy: what lets a count be checked
// against the bytes left before anything is reserved.
std::uint64_t min_value_bytes(GgufValueType t) {
  if (t == GgufValueType::kString) return 8;   // its length
  if (t == GgufValueType::kArray) return 12;   // element type + count
  return scalar_bytes(t);
}

template <typename T>
T load_le(const std::uint8_t* p) {
  // The format is little-endian, as is every host we build for; memcpy because nothing in
  // the file is aligned for us.
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// A cursor over the header that checks every read against the end of the file. `where`
// names what is being read, so a truncated file says which key or tensor ran out.
class Cursor {
 public:
  Cursor(const std::uint8_t* data, std::uint64_t size) : data_(data), size_(size) {}

  std::uint64_t pos() const { return pos_; }
  std::uint64_t left() const { return size_ - pos_; }

  void need(std::uint64_t bytes, const std::string& where) const {
    if (bytes > left())
      throw_error(ErrorKind::kCorruptInput, "{}: needs {} bytes at offset {} but the file ends {} bytes later", where,
                  bytes, pos_, left());
  }
  template <typename T>
  T read(const std::string& where) {
    need(sizeof(T), where);
    T v = load_le<T>(data_ + pos_);
    pos_ += sizeof(T);
    return v;
  }
  std::string string(const std::string& where) {
    const auto len = read<std::uint64_t>(where);
    if (len > left())
      throw_error(ErrorKind::kCorruptInput, "{}: string length {} runs past the end of the file ({} bytes left)", where,
                  len, left());
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<std::size_t>(len));
    pos_ += len;
    return s;
  }

 private:
  const std::uint8_t* data_;
  std::uint64_t size_;
  std::uint64_t pos_ = 0;
};

GgufValueType checked_value_type(std::uint32_t raw, const std::string& where) {
  if (raw > static_cast<std::uint32_t>(GgufValueType::kFloat64))
    throw_error(ErrorKind::kCorruptInput, "{}: unknown value type {}", where, raw);
  return static_cast<GgufValueType>(raw);
}

json read_value(Cursor& in, GgufValueType type, const std::string& where, int depth) {
  switch (type) {
    case GgufValueType::kUint8: return in.read<std::uint8_t>(where);
    case GgufValueType::kInt8: return in.read<std::int8_t>(where);
    case GgufValueType::kUint16: return in.read<std::uint16_t>(where);
    case GgufValueType::kInt16: return in.read<std::int16_t>(where);
    case GgufValueType::kUint32: return in.read<std::uint32_t>(where);
    case GgufValueType::kInt32: return in.read<std::int32_t>(where);
    case GgufValueType::kUint64: return in.read<std::uint64_t>(where);
    case GgufValueType::kInt64: return in.read<std::int64_t>(where);
    case GgufValueType::kFloat32: return static_cast<double>(in.read<float>(where));
    case GgufValueType::kFloat64: return in.read<double>(where);
    case GgufValueType::kBool: {
      const auto b = in.read<std::uint8_t>(where);
      if (b > 1) throw_error(ErrorKind::kCorruptInput, "{}: bool value {} is neither 0 nor 1", where, b);
      return b != 0;
    }
    case GgufValueType::kString: return in.string(where);
    case GgufValueType::kArray: {
      if (depth >= kMaxArrayDepth)
        throw_error(ErrorKind::kCorruptInput, "{}: arrays nested deeper than {}", where, kMaxArrayDepth);
      const auto element = checked_value_type(in.read<std::uint32_t>(where), where);
      const auto count = in.read<std::uint64_t>(where);
      const std::uint64_t least = min_value_bytes(element);
      if (count > in.left() / least)
        throw_error(ErrorKind::kCorruptInput, "{}: array of {} {} values needs at least {} bytes per value but only {} bytes are left",
                    where, count, value_type_name(element), least, in.left());
      json out = json::array();
      // Reserving is safe now: count * least <= the bytes left in the file.
      out.get_ref<json::array_t&>().reserve(static_cast<std::size_t>(count));
      for (std::uint64_t i = 0; i < count; ++i) out.push_back(read_value(in, element, where, depth + 1));
      return out;
    }
  }
  throw_error(ErrorKind::kInternal, "{}: unhandled value type", where);
}

std::string quote_name(const std::string& s) { return "'" + s + "'"; }

// IEEE half and bfloat16 to float: exact conversions, so no rounding question arises.
inline float half_to_float(const std::uint8_t* p) {
  return c10::detail::fp16_ieee_to_fp32_value(load_le<std::uint16_t>(p));
}
inline float bf16_to_float(const std::uint8_t* p) {
  const std::uint32_t bits = static_cast<std::uint32_t>(load_le<std::uint16_t>(p)) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// ---- block dequantizers: one block of `in` to block_elements floats. The formulas follow
// ggml's dequantize_row_* (ggml-quants.c) operation for operation, so results are
// bit-identical to llama.cpp's and gguf-py's (this file is built with -ffp-contract=off: a
// fused multiply-add would round once where they round twice).

void block_q4_0(const std::uint8_t* b, float* y) {
  const float d = half_to_float(b);
  const std::uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

void block_q4_1(const std::uint8_t* b, float* y) {
  const float d = half_to_float(b);
  const float m = half_to_float(b + 2);
  const std::uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

// Q5: the fifth bit of value j sits in bit j of a 32-bit word.
void block_q5_0(const std::uint8_t* b, float* y) {
  const float d = half_to_float(b);
  const auto qh = load_le<std::uint32_t>(b + 2);
  const std::uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(lo - 16) * d;
    y[j + 16] = static_cast<float>(hi - 16) * d;
  }
}

void block_q5_1(const std::uint8_t* b, float* y) {
  const float d = half_to_float(b);
  const float m = half_to_float(b + 2);
  const auto qh = load_le<std::uint32_t>(b + 4);
  const std::uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(lo) * d + m;
    y[j + 16] = static_cast<float>(hi) * d + m;
  }
}

void block_q8_0(const std::uint8_t* b, float* y) {
  const float d = half_to_float(b);
  const auto* qs = reinterpret_cast<const std::int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

void block_q2_k(const std::uint8_t* b, float* y) {
  const std::uint8_t* scales = b;  // 16: low nibble scale, high nibble min
  const std::uint8_t* q = b + 16;  // 64: four 2-bit values per byte
  const float d = half_to_float(b + 80);
  const float dmin = half_to_float(b + 82);
  int is = 0;
  for (int half = 0; half < 2; ++half, q += 32) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int part = 0; part < 2; ++part) {
        const std::uint8_t sc = scales[is++];
        const float dl = d * static_cast<float>(sc & 0x0F);
        const float ml = dmin * static_cast<float>(sc >> 4);
        const std::uint8_t* qq = q + 16 * part;
        for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((qq[l] >> shift) & 3) - ml;
      }
    }
  }
}

void block_q3_k(const std::uint8_t* b, float* y) {
  const std::uint8_t* hmask = b;    // 32: the third bit, bit k of byte l for value 32k + l
  const std::uint8_t* q = b + 32;   // 64: low two bits
  const std::uint8_t* packed = b + 96;  // 12: sixteen 6-bit scales
  const float d_all = half_to_float(b + 108);
  // Scale i: low 4 bits from byte i % 8 (low nibble for i < 8), high 2 bits from byte
  // 8 + i % 4 at bit 2 * (i / 4); stored with an offset of 32.
  int scales[16];
  for (int i = 0; i < 16; ++i) {
    const int low = i < 8 ? (packed[i] & 0x0F) : (packed[i - 8] >> 4);
    const int high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
    scales[i] = (low | (high << 4)) - 32;
  }
  int is = 0;
  std::uint8_t m = 1;
  for (int half = 0; half < 2; ++half, q += 32) {
    for (int shift = 0; shift < 8; shift += 2, m = static_cast<std::uint8_t>(m << 1)) {
      for (int part = 0; part < 2; ++part) {
        const float dl = d_all * static_cast<float>(scales[is++]);
        const std::uint8_t* qq = q + 16 * part;
        const std::uint8_t* hm = hmask + 16 * part;
        for (int l = 0; l < 16; ++l) {
          const int v = ((qq[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
          *y++ = dl * static_cast<float>(v);
        }
      }
    }
  }
}

// The eight 6-bit (scale, min) pairs of Q4_K and Q5_K, packed in 12 bytes.
void scale_min_k4(int j, const std::uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void block_q4_k(const std::uint8_t* b, float* y) {
  const float d = half_to_float(b);
  const float dmin = half_to_float(b + 2);
  const std::uint8_t* scales = b + 4;
  const std::uint8_t* q = b + 16;
  for (int is = 0; is < 8; is += 2, q += 32) {
    int sc, m;
    scale_min_k4(is, scales, sc, m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    scale_min_k4(is + 1, scales, sc, m);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0x0F) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
  }
}

void block_q5_k(const std::uint8_t* b, float* y) {
  const float d = half_to_float(b);
  const float dmin = half_to_float(b + 2);
  const std::uint8_t* scales = b + 4;
  const std::uint8_t* qh = b + 16;  // 32: bit 2k (2k+1) of byte l is the fifth bit of sub-block 2k (2k+1)
  const std::uint8_t* ql = b + 48;
  std::uint8_t u1 = 1, u2 = 2;
  for (int is = 0; is < 8; is += 2, ql += 32) {
    int sc, m;
    scale_min_k4(is, scales, sc, m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    scale_min_k4(is + 1, scales, sc, m);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0x0F) + ((qh[l] & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
    u1 = static_cast<std::uint8_t>(u1 << 2);
    u2 = static_cast<std::uint8_t>(u2 << 2);
  }
}

void block_q6_k(const std::uint8_t* b, float* y) {
  const std::uint8_t* ql = b;        // 128: low four bits
  const std::uint8_t* qh = b + 128;  // 64: high two bits
  const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192);  // 16 signed scales
  const float d = half_to_float(b + 208);
  for (int n = 0; n < 2; ++n, y += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      // (d * scale) * q, in ggml's order.
      y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
  }
}

// Q8_K: a float32 scale, 256 int8 values, then 16 int16 group sums (for dot products only).
void block_q8_k(const std::uint8_t* b, float* y) {
  const float d = load_le<float>(b);
  const auto* qs = reinterpret_cast<const std::int8_t*>(b + 4);
  for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(qs[j]);
}

void block_f32(const std::uint8_t* b, float* y) { *y = load_le<float>(b); }
void block_f16(const std::uint8_t* b, float* y) { *y = half_to_float(b); }
void block_bf16(const std::uint8_t* b, float* y) { *y = bf16_to_float(b); }
void block_f64(const std::uint8_t* b, float* y) { *y = static_cast<float>(load_le<double>(b)); }
void block_i8(const std::uint8_t* b, float* y) { *y = static_cast<float>(static_cast<std::int8_t>(*b)); }
void block_i16(const std::uint8_t* b, float* y) { *y = static_cast<float>(load_le<std::int16_t>(b)); }
void block_i32(const std::uint8_t* b, float* y) { *y = static_cast<float>(load_le<std::int32_t>(b)); }
void block_i64(const std::uint8_t* b, float* y) { *y = static_cast<float>(load_le<std::int64_t>(b)); }

using BlockFn = void (*)(const std::uint8_t*, float*);

BlockFn block_function(std::uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::kF32: return block_f32;
    case GgmlType::kF16: return block_f16;
    case GgmlType::kBF16: return block_bf16;
    case GgmlType::kF64: return block_f64;
    case GgmlType::kI8: return block_i8;
    case GgmlType::kI16: return block_i16;
    case GgmlType::kI32: return block_i32;
    case GgmlType::kI64: return block_i64;
    case GgmlType::kQ4_0: return block_q4_0;
    case GgmlType::kQ4_1: return block_q4_1;
    case GgmlType::kQ5_0: return block_q5_0;
    case GgmlType::kQ5_1: return block_q5_1;
    case GgmlType::kQ8_0: return block_q8_0;
    case GgmlType::kQ2_K: return block_q2_k;
    case GgmlType::kQ3_K: return block_q3_k;
    case GgmlType::kQ4_K: return block_q4_k;
    case GgmlType::kQ5_K: return block_q5_k;
    case GgmlType::kQ6_K: return block_q6_k;
    case GgmlType::kQ8_K: return block_q8_k;
    default: return nullptr;  // Q8_1 (a dot-product intermediate; gguf-py and ggml disagree on its size)
  }
  return nullptr;
}

}  // namespace

std::string ggml_type_name(std::uint32_t type) {
  if (const TypeRow* t = find_type(type)) return t->name;
  return "type " + std::to_string(type);
}

const GgmlTypeTraits* ggml_type_traits(std::uint32_t type) {
  // Built once from the table: one entry per type with a dequantizer.
  static const std::vector<GgmlTypeTraits> traits = [] {
    std::vector<GgmlTypeTraits> out;
    for (const auto& t : kTypes)
      if (t.dequantizable) out.push_back({static_cast<GgmlType>(t.id), t.name, t.block_elements, t.block_bytes});
    return out;
  }();
  for (const auto& t : traits)
    if (static_cast<std::uint32_t>(t.type) == type) return &t;
  return nullptr;
}

std::int64_t GgufTensorInfo::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

GgufFile GgufFile::open(const fs::path& path) {
  return with_context(path.string(), [&] {
    GgufFile result;
    result.file_ = MappedFile::open(path);
    const std::uint8_t* data = result.file_->data();
    const std::uint64_t size = result.file_->size();
    Cursor in(data, size);

    if (size < 4 || std::memcmp(data, "GGUF", 4) != 0)
      throw_error(ErrorKind::kCorruptInput, "not a GGUF file: it does not start with the magic \"GGUF\"");
    in.read<std::uint32_t>("magic");
    result.version_ = in.read<std::uint32_t>("header (version)");
    if (result.version_ != 2 && result.version_ != 3)
      throw_error(ErrorKind::kCorruptInput, "unsupported GGUF version {} (this reader reads versions 2 and 3)",
                  result.version_);
    const auto tensor_count = in.read<std::uint64_t>("header (tensor count)");
    const auto kv_count = in.read<std::uint64_t>("header (metadata count)");
    // Each key/value needs at least a key length, a type and one byte of value (13 bytes);
    // each tensor info a name length, n_dims, one dimension, a type and an offset (32).
    if (kv_count > in.left() / 13)
      throw_error(ErrorKind::kCorruptInput, "header claims {} metadata entries, more than the {} bytes left can hold",
                  kv_count, in.left());
    if (tensor_count > in.left() / 32)
      throw_error(ErrorKind::kCorruptInput, "header claims {} tensors, more than the {} bytes left can hold",
                  tensor_count, in.left());

    json metadata = json::object();
    for (std::uint64_t i = 0; i < kv_count; ++i) {
      const std::string key = in.string(fmt::format("metadata entry {} (key)", i));
      const std::string where = "metadata key " + quote_name(key);
      if (metadata.contains(key)) throw_error(ErrorKind::kCorruptInput, "{}: duplicate key", where);
      const auto type = checked_value_type(in.read<std::uint32_t>(where), where);
      metadata[key] = read_value(in, type, where, 0);
      result.value_types_[key] = type;
    }

    std::uint64_t alignment = kDefaultAlignment;
    if (auto it = result.value_types_.find("general.alignment"); it != result.value_types_.end()) {
      if (it->second != GgufValueType::kUint32)
        throw_error(ErrorKind::kCorruptInput, "metadata key 'general.alignment': must be uint32, not {}",
                    value_type_name(it->second));
      alignment = metadata["general.alignment"].get<std::uint64_t>();
      if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        throw_error(ErrorKind::kCorruptInput, "metadata key 'general.alignment': {} is not a power of two", alignment);
    }

    result.tensors_.reserve(static_cast<std::size_t>(tensor_count));
    for (std::uint64_t i = 0; i < tensor_count; ++i) {
      GgufTensorInfo t;
      t.name = in.string(fmt::format("tensor info {} (name)", i));
      const std::string where = "tensor " + quote_name(t.name);
      if (result.tensor_index_.count(t.name)) throw_error(ErrorKind::kCorruptInput, "{}: duplicate tensor name", where);
      const auto n_dims = in.read<std::uint32_t>(where);
      if (n_dims == 0 || n_dims > kMaxDims)
        throw_error(ErrorKind::kCorruptInput, "{}: {} dimensions (GGUF allows 1 to {})", where, n_dims, kMaxDims);
      std::vector<std::int64_t> ne(n_dims);
      std::uint64_t numel = 1;
      for (std::uint32_t d = 0; d < n_dims; ++d) {
        const auto raw = in.read<std::uint64_t>(where);
        // ggml's ne is int64: a value with the top bit set is negative.
        if (raw == 0 || raw > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          throw_error(ErrorKind::kCorruptInput, "{}: dimension {} is {} (must be positive)", where, d,
                      static_cast<std::int64_t>(raw));
        if (numel > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / raw)
          throw_error(ErrorKind::kCorruptInput, "{}: element count overflows int64", where);
        numel *= raw;
        ne[d] = static_cast<std::int64_t>(raw);
      }
      t.shape.assign(ne.rbegin(), ne.rend());
      t.type = in.read<std::uint32_t>(where);
      t.offset = in.read<std::uint64_t>(where);
      if (t.offset % alignment != 0)
        throw_error(ErrorKind::kCorruptInput, "{}: data offset {} is not a multiple of the alignment {}", where, t.offset,
                    alignment);
      if (const TypeRow* type = find_type(t.type)) {
        const auto block = static_cast<std::uint64_t>(type->block_elements);
        if (static_cast<std::uint64_t>(ne[0]) % block != 0)
          throw_error(ErrorKind::kCorruptInput, "{}: row length {} is not a multiple of {}'s block of {}", where, ne[0],
                      type->name, block);
        const std::uint64_t blocks = numel / block;
        const auto block_bytes = static_cast<std::uint64_t>(type->block_bytes);
        if (blocks > std::numeric_limits<std::uint64_t>::max() / block_bytes)
          throw_error(ErrorKind::kCorruptInput, "{}: data size overflows", where);
        t.bytes = blocks * block_bytes;
      }
      // Unknown types keep bytes = 0: their size is unknown, so only the offset is checked
      // here and dequantize() names the type.
      result.tensor_index_.emplace(t.name, result.tensors_.size());
      result.tensors_.push_back(std::move(t));
    }

    const std::uint64_t header_end = in.pos();
    result.data_start_ = header_end + (alignment - header_end % alignment) % alignment;
    const std::uint64_t data_size = result.data_start_ <= size ? size - result.data_start_ : 0;
    for (const auto& t : result.tensors_) {
      if (result.data_start_ > size || t.offset > data_size || t.bytes > data_size - t.offset)
        throw_error(ErrorKind::kCorruptInput,
                    "tensor '{}': data [{}, {}) of the data section runs past the end of the file ({} bytes of data)",
                    t.name, t.offset, t.offset + t.bytes, data_size);
    }
    std::vector<const GgufTensorInfo*> by_offset;
    for (const auto& t : result.tensors_)
      if (t.bytes > 0) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
    for (std::size_t i = 1; i < by_offset.size(); ++i)
      if (by_offset[i]->offset < by_offset[i - 1]->offset + by_offset[i - 1]->bytes)
        throw_error(ErrorKind::kCorruptInput, "tensors '{}' and '{}' overlap in the data section", by_offset[i - 1]->name,
                    by_offset[i]->name);

    result.metadata_ = std::make_shared<const json>(std::move(metadata));
    return result;
  });
}

const fs::path& GgufFile::path() const { return file_->path(); }

bool GgufFile::has(const std::string& key) const { return value_types_.count(key) != 0; }

GgufValueType GgufFile::value_type(const std::string& key) const {
  auto it = value_types_.find(key);
  if (it == value_types_.end()) throw_error(ErrorKind::kNotFound, "{}: no metadata key '{}'", path().string(), key);
  return it->second;
}

std::string GgufFile::required_string(const std::string& key) const {
  auto it = value_types_.find(key);
  if (it == value_types_.end()) throw_error(ErrorKind::kCorruptInput, "{}: missing metadata key '{}'", path().string(), key);
  if (it->second != GgufValueType::kString)
    throw_error(ErrorKind::kCorruptInput, "{}: metadata key '{}' is {}, not a string", path().string(), key,
                value_type_name(it->second));
  return (*metadata_)[key].get<std::string>();
}

namespace {
bool is_integer_type(GgufValueType t) {
  return scalar_bytes(t) != 0 && t != GgufValueType::kFloat32 && t != GgufValueType::kFloat64 && t != GgufValueType::kBool;
}
}  // namespace

std::optional<std::int64_t> GgufFile::optional_int(const std::string& key) const {
  auto it = value_types_.find(key);
  if (it == value_types_.end()) return std::nullopt;
  if (!is_integer_type(it->second))
    throw_error(ErrorKind::kCorruptInput, "{}: metadata key '{}' is {}, not an integer", path().string(), key,
                value_type_name(it->second));
  const json& v = (*metadata_)[key];
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    throw_error(ErrorKind::kCorruptInput, "{}: metadata key '{}' = {} does not fit in int64", path().string(), key,
                v.get<std::uint64_t>());
  return v.get<std::int64_t>();
}

std::int64_t GgufFile::required_int(const std::string& key) const {
  auto v = optional_int(key);
  if (!v) throw_error(ErrorKind::kCorruptInput, "{}: missing metadata key '{}'", path().string(), key);
  return *v;
}

std::optional<double> GgufFile::optional_float(const std::string& key) const {
  auto it = value_types_.find(key);
  if (it == value_types_.end()) return std::nullopt;
  if (it->second != GgufValueType::kFloat32 && it->second != GgufValueType::kFloat64 && !is_integer_type(it->second))
    throw_error(ErrorKind::kCorruptInput, "{}: metadata key '{}' is {}, not a number", path().string(), key,
                value_type_name(it->second));
  return (*metadata_)[key].get<double>();
}

std::optional<bool> GgufFile::optional_bool(const std::string& key) const {
  auto it = value_types_.find(key);
  if (it == value_types_.end()) return std::nullopt;
  if (it->second != GgufValueType::kBool)
    throw_error(ErrorKind::kCorruptInput, "{}: metadata key '{}' is {}, not a bool", path().string(), key,
                value_type_name(it->second));
  return (*metadata_)[key].get<bool>();
}

bool GgufFile::contains(const std::string& name) const { return tensor_index_.count(name) != 0; }

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  if (it == tensor_index_.end()) throw_error(ErrorKind::kNotFound, "{}: no tensor named '{}'", path().string(), name);
  return tensors_[it->second];
}

const std::uint8_t* GgufFile::raw_data(const std::string& name) const {
  return file_->data() + data_start_ + tensor(name).offset;
}

at::Tensor GgufFile::dequantize(const std::string& name) const {
  const GgufTensorInfo& t = tensor(name);
  if (block_function(t.type) == nullptr)
    throw_error(ErrorKind::kUnsupported, "{}: tensor '{}' has type {}, which this library cannot dequantize",
                path().string(), name, ggml_type_name(t.type));
  at::Tensor out = at::empty(t.shape, at::TensorOptions().dtype(at::kFloat));
  dequantize_ggml(t.type, raw_data(name), t.numel(), out.data_ptr<float>());
  return out;
}

void dequantize_ggml(std::uint32_t type, const std::uint8_t* data, std::int64_t count, float* out) {
  const BlockFn fn = block_function(type);
  const GgmlTypeTraits* traits = ggml_type_traits(type);
  if (fn == nullptr || traits == nullptr)
    throw_error(ErrorKind::kUnsupported, "no dequantizer for ggml type {}", ggml_type_name(type));
  if (count < 0 || count % traits->block_elements != 0)
    throw_error(ErrorKind::kInvalidArgument, "{} values of {} are not a whole number of {}-value blocks", count,
                traits->name, traits->block_elements);
  const std::int64_t blocks = count / traits->block_elements;
  const std::int64_t per_block = traits->block_elements;
  const std::int64_t block_bytes = traits->block_bytes;
  // Blocks are independent; a grain of ~32K values keeps small tensors on one thread.
  const std::int64_t grain = std::max<std::int64_t>(1, 32768 / per_block);
  at::parallel_for(0, blocks, grain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) fn(data + i * block_bytes, out + i * per_block);
  });
}

bool is_gguf_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

}  // namespace cushioncache
