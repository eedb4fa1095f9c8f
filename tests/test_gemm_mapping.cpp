// The tensor-core INT8 GEMM's index mapping (kernels/cuda/gemm_mapping.h), checked on the
// CPU: an emulation of gemm_s8s8_kernel's data movement built from the very functions the
// kernel calls (cp.async copies into the shared-memory ring, the K permutation, the
// registers each lane packs, the epilogue's output coordinates), with mma.m16n8k32 itself
// emulated from the fragment layout the PTX ISA documents ("Matrix Fragments for
// mma.m16n8k32", .s8/.u8 multiplicands, .s32 accumulators), transcribed here independently
// of the header. The result is compared with an int64 reference GEMM on shapes whose M, N
// and K are not multiples of the tile. No GPU and no CUDA toolkit needed: built in every
// build, so a kernel change (a new tile, WGMMA) is checked in CI.
//
// The emulation also flags what the comparison alone might miss: a shared-memory read of
// bytes still in flight or never written, a 128-bit access off its alignment, a global
// read outside the operands, an output written twice or never. And negative controls
// break one index function at a time and require the emulation to notice.
#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cushioncache/kernels/cuda/gemm_mapping.h"

#include <catch2/catch.hpp>

namespace gm = cushioncache::kernels::cuda::gemm_mapping;

namespace {

// ---- PTX ISA, "Matrix Fragments for mma.m16n8k32", integer types -----------------------
// groupID = %laneid >> 2, threadID_in_group = %laneid % 4. Register r holds elements
// 4r .. 4r + 3, low byte first.
struct Coord {
  int row, col;
};
// A (16 x 32, .row), a0 .. a15.
Coord ptx_a(int lane, int i) {
  const int group = lane >> 2, thread_in_group = lane % 4;
  const int row = (i < 4 || (i >= 8 && i < 12)) ? group : group + 8;
  const int col = thread_in_group * 4 + (i & 0x3) + (i >= 8 ? 16 : 0);
  return {row, col};
}
// B (32 x 8, .col), b0 .. b7: row is k.
Coord ptx_b(int lane, int i) {
  const int group = lane >> 2, thread_in_group = lane % 4;
  return {thread_in_group * 4 + (i & 0x3) + (i >= 4 ? 16 : 0), group};
}
// C and D (16 x 8, .s32), c0 .. c3.
Coord ptx_c(int lane, int i) {
  const int group = lane >> 2, thread_in_group = lane % 4;
  return {i < 2 ? group : group + 8, thread_in_group * 2 + (i & 0x1)};
}

// One warp's mma.sync.m16n8k32.row.col.s32.{s8,u8}.s8.s32 with D = C in place.
void emulate_mma(bool unsigned_a, const std::uint32_t (&a)[32][4], const std::uint32_t (&b)[32][2], std::int32_t (&d)[32][4]) {
  std::int64_t A[16][32] = {}, B[32][8] = {}, C[16][8] = {};
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 16; ++i) {
      const unsigned byte = (a[lane][i / 4] >> (8 * (i % 4))) & 0xffu;
      const Coord at = ptx_a(lane, i);
      A[at.row][at.col] = unsigned_a ? static_cast<std::int64_t>(byte) : static_cast<std::int64_t>(static_cast<std::int8_t>(byte));
    }
    for (int i = 0; i < 8; ++i) {
      const unsigned byte = (b[lane][i / 4] >> (8 * (i % 4))) & 0xffu;
      const Coord at = ptx_b(lane, i);
      B[at.row][at.col] = static_cast<std::int8_t>(byte);
    }
    for (int i = 0; i < 4; ++i) C[ptx_c(lane, i).row][ptx_c(lane, i).col] = d[lane][i];
  }
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 4; ++i) {
      const Coord at = ptx_c(lane, i);
      std::int64_t sum = C[at.row][at.col];
      for (int k = 0; k < 32; ++k) sum += A[at.row][k] * B[k][at.col];
      d[lane][i] = static_cast<std::int32_t>(sum);  // the shapes here keep every sum inside int32
    }
}

// The kernel's index functions, as a policy the negative controls override one at a time.
struct KernelMapping {
  static gm::TileByte stage_chunk(int tid, int i) { return gm::stage_chunk(tid, i); }
  static int stage_slot(std::int64_t kt) { return gm::stage_slot(kt); }
  static int fragment_col(int lane) { return gm::fragment_col(lane); }
  static int a_fragment_row(int warp_m, int fm, int lane, int half) { return gm::a_fragment_row(warp_m, fm, lane, half); }
  static int w_fragment_row(int warp_n, int fn, int lane) { return gm::w_fragment_row(warp_n, fn, lane); }
  static int a_register_half(int reg) { return gm::a_register_half(reg); }
  static int a_register_word(int step, int reg) { return gm::a_register_word(step, reg); }
  static int b_register_word(int step, int reg) { return gm::b_register_word(step, reg); }
  static int acc_row(int warp_m, int fm, int lane, int i) { return gm::acc_row(warp_m, fm, lane, i); }
  static int acc_col(int warp_n, int fn, int lane, int i) { return gm::acc_col(warp_n, fn, lane, i); }
};

struct Problem {
  std::int64_t m, n, k;
  bool unsigned_a;
  std::vector<std::uint8_t> a;  // [m, k]: int8 bit patterns, or uint8
  std::vector<std::uint8_t> w;  // [n, k]: int8 bit patterns
};

Problem make_problem(std::int64_t m, std::int64_t n, std::int64_t k, bool unsigned_a, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  Problem p{m, n, k, unsigned_a, std::vector<std::uint8_t>(static_cast<std::size_t>(m * k)),
            std::vector<std::uint8_t>(static_cast<std::size_t>(n * k))};
  for (auto& v : p.a) v = static_cast<std::uint8_t>(byte(rng));
  for (auto& v : p.w) v = static_cast<std::uint8_t>(byte(rng));
  // A saturated row and column: the largest products of each sign.
  for (std::int64_t i = 0; i < k; ++i) {
    p.a[static_cast<std::size_t>(i)] = unsigned_a ? 255 : 0x80;  // 255 or -128
    p.w[static_cast<std::size_t>(i)] = 0x80;                     // -128
  }
  return p;
}

std::vector<std::int64_t> reference_gemm(const Problem& p) {
  std::vector<std::int64_t> y(static_cast<std::size_t>(p.m * p.n));
  for (std::int64_t r = 0; r < p.m; ++r)
    for (std::int64_t c = 0; c < p.n; ++c) {
      std::int64_t sum = 0;
      for (std::int64_t i = 0; i < p.k; ++i) {
        const std::uint8_t raw = p.a[static_cast<std::size_t>(r * p.k + i)];
        const std::int64_t av = p.unsigned_a ? static_cast<std::int64_t>(raw) : static_cast<std::int64_t>(static_cast<std::int8_t>(raw));
        sum += av * static_cast<std::int8_t>(p.w[static_cast<std::size_t>(c * p.k + i)]);
      }
      y[static_cast<std::size_t>(r * p.n + c)] = sum;
    }
  return y;
}

// Shared memory with a state per byte: never written, a cp.async in flight, landed.
struct SharedMemory {
  enum : std::uint8_t { kNever, kInFlight, kLanded };
  std::vector<std::uint8_t> bytes = std::vector<std::uint8_t>(gm::kSharedBytes, 0xcd);
  std::vector<std::uint8_t> state = std::vector<std::uint8_t>(gm::kSharedBytes, kNever);
};

struct Emulation {
  std::vector<std::int64_t> y;  // int32 results, widened
  std::vector<int> writes;      // stores per output element
  std::vector<std::string> violations;
  void violation(std::string what) {
    if (violations.size() < 5) violations.push_back(std::move(what));
  }
};

// cp.async.cg ... 16 with commit_group / wait_group, for a whole block: every thread issues
// the same group structure, so one queue serves all; a copy lands at the wait that covers
// its group (until then its bytes are in flight, and reading them is a hazard).
class AsyncCopies {
 public:
  AsyncCopies(SharedMemory& shared, Emulation& out) : shared_(shared), out_(out) {}
  void copy(int offset, const std::uint8_t* source) {  // source null: zero-fill
    std::array<std::uint8_t, 16> data{};
    if (source != nullptr) std::memcpy(data.data(), source, 16);
    if (offset % 16 != 0 || offset < 0 || offset + 16 > gm::kSharedBytes) {
      out_.violation("cp.async to shared offset " + std::to_string(offset));
      return;
    }
    for (int i = 0; i < 16; ++i) {
      if (shared_.state[static_cast<std::size_t>(offset + i)] == SharedMemory::kInFlight)
        out_.violation("two copies in flight to shared offset " + std::to_string(offset));
      shared_.state[static_cast<std::size_t>(offset + i)] = SharedMemory::kInFlight;
    }
    open_.emplace_back(offset, data);
  }
  void commit() {
    groups_.push_back(std::move(open_));
    open_.clear();
  }
  void wait(int pending) {
    while (static_cast<int>(groups_.size()) > pending) {
      for (const auto& [offset, data] : groups_.front())
        for (int i = 0; i < 16; ++i) {
          shared_.bytes[static_cast<std::size_t>(offset + i)] = data[static_cast<std::size_t>(i)];
          shared_.state[static_cast<std::size_t>(offset + i)] = SharedMemory::kLanded;
        }
      groups_.pop_front();
    }
  }

 private:
  SharedMemory& shared_;
  Emulation& out_;
  std::vector<std::pair<int, std::array<std::uint8_t, 16>>> open_;
  std::deque<std::vector<std::pair<int, std::array<std::uint8_t, 16>>>> groups_;
};

// A 128-bit shared load as four little-endian 32-bit words.
std::array<std::uint32_t, 4> load_128(const SharedMemory& shared, int offset, Emulation& out) {
  std::array<std::uint32_t, 4> words{};
  if (offset % 16 != 0 || offset < 0 || offset + 16 > gm::kSharedBytes) {
    out.violation("128-bit shared load at offset " + std::to_string(offset));
    return words;
  }
  for (int i = 0; i < 16; ++i) {
    const std::uint8_t state = shared.state[static_cast<std::size_t>(offset + i)];
    if (state != SharedMemory::kLanded)
      out.violation(std::string(state == SharedMemory::kInFlight ? "read of bytes still in flight" : "read of never-written bytes") +
                    " at shared offset " + std::to_string(offset + i));
    words[static_cast<std::size_t>(i / 4)] |= static_cast<std::uint32_t>(shared.bytes[static_cast<std::size_t>(offset + i)]) << (8 * (i % 4));
  }
  return words;
}

// gemm_s8s8_kernel, block by block, each block's 256 threads in lockstep between its
// barriers (which is what the barriers promise); the int32 sums before the epilogue's
// dequantization, which is arithmetic, not mapping.
template <typename Map>
Emulation emulate_kernel(const Problem& p) {
  Emulation out;
  out.y.assign(static_cast<std::size_t>(p.m * p.n), 0);
  out.writes.assign(static_cast<std::size_t>(p.m * p.n), 0);
  const std::int64_t grid_m = gm::grid_blocks(p.m, gm::kTileM), grid_n = gm::grid_blocks(p.n, gm::kTileN), tiles = gm::k_tiles(p.k);
  using Accumulators = std::array<std::array<std::array<std::int32_t, 4>, gm::kFragsN>, gm::kFragsM>;
  for (std::int64_t by = 0; by < grid_m; ++by)
    for (std::int64_t bx = 0; bx < grid_n; ++bx) {
      const std::int64_t tile_m = gm::tile_origin(static_cast<unsigned>(by), gm::kTileM);
      const std::int64_t tile_n = gm::tile_origin(static_cast<unsigned>(bx), gm::kTileN);
      SharedMemory shared;
      AsyncCopies copies(shared, out);
      std::vector<Accumulators> acc(gm::kThreads, Accumulators{});

      // Global source of a chunk, checked against the operand's bounds and cp.async's alignment.
      auto source = [&](const std::vector<std::uint8_t>& operand, std::int64_t row, std::int64_t k) -> const std::uint8_t* {
        const std::int64_t at = row * p.k + k;
        if (at < 0 || at + 16 > static_cast<std::int64_t>(operand.size()) || at % 16 != 0) {
          out.violation("global read at byte " + std::to_string(at));
          return nullptr;
        }
        return operand.data() + at;
      };
      auto load_stage = [&](int slot, std::int64_t kt) {
        for (int tid = 0; tid < gm::kThreads; ++tid)
          for (int i = 0; i < gm::kChunksPerThread; ++i) {
            const gm::TileByte chunk = Map::stage_chunk(tid, i);
            const std::int64_t k = gm::stage_k(kt, chunk.col), am = tile_m + chunk.row, wn = tile_n + chunk.row;
            const bool a_ok = gm::chunk_in_bounds(am, k, p.m, p.k), w_ok = gm::chunk_in_bounds(wn, k, p.n, p.k);
            copies.copy(slot * gm::kStageBytes + gm::stage_a_offset(chunk.row, chunk.col), a_ok ? source(p.a, am, k) : nullptr);
            copies.copy(slot * gm::kStageBytes + gm::stage_w_offset(chunk.row, chunk.col), w_ok ? source(p.w, wn, k) : nullptr);
          }
      };

      for (int s = 0; s < gm::kStages - 1; ++s) {
        if (s < tiles) load_stage(Map::stage_slot(s), s);
        copies.commit();
      }
      for (std::int64_t kt = 0; kt < tiles; ++kt) {
        copies.wait(gm::kGroupsInFlight);
        const std::int64_t next = kt + gm::kStages - 1;
        if (next < tiles) load_stage(Map::stage_slot(next), next);
        copies.commit();

        const int stage = Map::stage_slot(kt) * gm::kStageBytes;
        for (int warp = 0; warp < gm::kThreads / gm::kWarpSize; ++warp) {
          const int warp_m = gm::warp_m_of(warp), warp_n = gm::warp_n_of(warp);
          std::array<std::uint32_t, 4> a_rows[32][gm::kFragsM][2], w_rows[32][gm::kFragsN];
          for (int lane = 0; lane < 32; ++lane) {
            const int col = Map::fragment_col(lane);
            for (int fm = 0; fm < gm::kFragsM; ++fm)
              for (int half = 0; half < 2; ++half)
                a_rows[lane][fm][half] = load_128(shared, stage + gm::stage_a_offset(Map::a_fragment_row(warp_m, fm, lane, half), col), out);
            for (int fn = 0; fn < gm::kFragsN; ++fn)
              w_rows[lane][fn] = load_128(shared, stage + gm::stage_w_offset(Map::w_fragment_row(warp_n, fn, lane), col), out);
          }
          for (int step = 0; step < gm::kStepsPerStage; ++step)
            for (int fm = 0; fm < gm::kFragsM; ++fm)
              for (int fn = 0; fn < gm::kFragsN; ++fn) {
                std::uint32_t fa[32][4], fb[32][2];
                std::int32_t d[32][4];
                for (int lane = 0; lane < 32; ++lane) {
                  for (int reg = 0; reg < 4; ++reg)
                    fa[lane][reg] = a_rows[lane][fm][Map::a_register_half(reg)][static_cast<std::size_t>(Map::a_register_word(step, reg))];
                  for (int reg = 0; reg < 2; ++reg) fb[lane][reg] = w_rows[lane][fn][static_cast<std::size_t>(Map::b_register_word(step, reg))];
                  for (int i = 0; i < 4; ++i) d[lane][i] = acc[static_cast<std::size_t>(warp * 32 + lane)][fm][fn][i];
                }
                emulate_mma(p.unsigned_a, fa, fb, d);
                for (int lane = 0; lane < 32; ++lane)
                  for (int i = 0; i < 4; ++i) acc[static_cast<std::size_t>(warp * 32 + lane)][fm][fn][i] = d[lane][i];
              }
        }
      }
      copies.wait(0);

      for (int tid = 0; tid < gm::kThreads; ++tid) {
        const int lane = tid % gm::kWarpSize, warp = tid / gm::kWarpSize;
        const int warp_m = gm::warp_m_of(warp), warp_n = gm::warp_n_of(warp);
        for (int fm = 0; fm < gm::kFragsM; ++fm)
          for (int fn = 0; fn < gm::kFragsN; ++fn)
            for (int i = 0; i < 4; ++i) {
              const std::int64_t row = tile_m + Map::acc_row(warp_m, fm, lane, i), col = tile_n + Map::acc_col(warp_n, fn, lane, i);
              if (row < p.m && col < p.n) {
                out.y[static_cast<std::size_t>(row * p.n + col)] = acc[static_cast<std::size_t>(tid)][fm][fn][i];
                ++out.writes[static_cast<std::size_t>(row * p.n + col)];
              }
            }
      }
    }
  return out;
}

// How far an emulation is from the reference: mismatching elements, elements not written
// exactly once, and hazards.
struct Verdict {
  std::size_t wrong = 0, not_once = 0;
  std::vector<std::string> violations;
  std::string first_wrong;
  bool clean() const { return wrong == 0 && not_once == 0 && violations.empty(); }
};

template <typename Map>
Verdict judge(const Problem& p) {
  const Emulation got = emulate_kernel<Map>(p);
  const std::vector<std::int64_t> want = reference_gemm(p);
  Verdict v;
  v.violations = got.violations;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (got.writes[i] != 1) ++v.not_once;
    if (got.y[i] != want[i] && v.wrong++ == 0)
      v.first_wrong = "y[" + std::to_string(static_cast<std::int64_t>(i) / p.n) + ", " + std::to_string(static_cast<std::int64_t>(i) % p.n) +
                      "] = " + std::to_string(got.y[i]) + ", expected " + std::to_string(want[i]);
  }
  return v;
}

// Negative controls: each breaks one index function the way an edit might.
struct SwappedARegisters : KernelMapping {  // a1 <-> a2: rows g + 8 and k 16+ exchanged
  static int a_register_half(int reg) { return reg / 2; }
  static int a_register_word(int step, int reg) { return 2 * step + reg % 2; }
};
struct SwappedBRegisters : KernelMapping {  // b0 <-> b1 while A keeps its order
  static int b_register_word(int step, int reg) { return 2 * step + 1 - reg; }
};
struct TransposedAccumulators : KernelMapping {  // c1 <-> c2
  static int acc_row(int warp_m, int fm, int lane, int i) { return gm::acc_row(warp_m, fm, lane, (i % 2) * 2); }
  static int acc_col(int warp_n, int fn, int lane, int i) { return gm::acc_col(warp_n, fn, lane, i / 2); }
};
struct OneSlotRing : KernelMapping {  // every stage into slot 0: overwrites a stage in use
  static int stage_slot(std::int64_t) { return 0; }
};
struct WrongWRow : KernelMapping {  // B fragments from the wrong warp column
  static int w_fragment_row(int warp_n, int fn, int lane) { return gm::w_fragment_row((warp_n + 1) % gm::kWarpsN, fn, lane); }
};

}  // namespace

TEST_CASE("gemm mapping: the tensor-core kernel's index functions emulated on the CPU match an int64 GEMM on tail shapes",
          "[kernels][gemm_mapping]") {
  unsigned seed = 7;
  for (std::int64_t m : {1, 17, 130})
    for (std::int64_t n : {8, 72, 200})
      for (std::int64_t k : {32, 48, 208})
        for (bool unsigned_a : {false, true}) {
          INFO("m " << m << ", n " << n << ", k " << k << (unsigned_a ? ", uint8 x int8" : ", int8 x int8"));
          const Verdict v = judge<KernelMapping>(make_problem(m, n, k, unsigned_a, seed++));
          INFO((v.violations.empty() ? std::string("no hazard") : v.violations.front()) << "; " << v.first_wrong);
          CHECK(v.violations.empty());
          CHECK(v.not_once == 0);
          CHECK(v.wrong == 0);
        }
}

TEST_CASE("gemm mapping: the emulation fails when one fragment or epilogue or ring index is broken", "[kernels][gemm_mapping]") {
  // One tail shape with two blocks each way and four K stages, so every index matters.
  const Problem p = make_problem(130, 200, 208, true, 99);
  REQUIRE(judge<KernelMapping>(p).clean());
  CHECK_FALSE(judge<SwappedARegisters>(p).clean());
  CHECK_FALSE(judge<SwappedBRegisters>(p).clean());
  CHECK_FALSE(judge<TransposedAccumulators>(p).clean());
  CHECK_FALSE(judge<OneSlotRing>(p).clean());
  CHECK_FALSE(judge<WrongWRow>(p).clean());
}

TEST_CASE("gemm mapping: the fragment functions agree with the PTX layout lane by lane", "[kernels][gemm_mapping]") {
  // Within one stage, lane (g, t)'s register a[reg] of step s must hold A's fragment
  // elements 4 reg .. 4 reg + 3 (PTX): row g or g + 8 as the register says, and a k that
  // W's register holding the same fragment k reads from the same stage byte.
  for (int lane = 0; lane < 32; ++lane)
    for (int step = 0; step < gm::kStepsPerStage; ++step)
      for (int reg = 0; reg < 4; ++reg) {
        INFO("lane " << lane << ", step " << step << ", a" << reg);
        const Coord first = ptx_a(lane, 4 * reg);
        const int half = gm::a_register_half(reg);
        CHECK(gm::a_fragment_row(0, 0, lane, half) == first.row);
        // The stage byte behind fragment k = first.col: a lane's 16 bytes start at fragment_col.
        const int a_byte = gm::fragment_col(lane) + 4 * gm::a_register_word(step, reg);
        // B: the register holding fragment k = first.col (PTX: b0 for k < 16, b1 above).
        const int b_reg = first.col < 16 ? 0 : 1;
        CHECK(ptx_b(lane, 4 * b_reg).row == first.col);
        const int w_byte = gm::fragment_col(lane) + 4 * gm::b_register_word(step, b_reg);
        CHECK(a_byte == w_byte);
        CHECK(a_byte / 16 == lane % 4);  // inside the lane's own 16-byte load
      }
}
