// The index mapping of the tensor-core INT8 GEMM (int8_gemm_kernels.cu): which bytes each
// thread copies into shared memory, which shared-memory bytes each lane packs into the
// registers of mma.sync.m16n8k32, and where each accumulator lands in y. The kernel
// computes every index through these functions, and tests/test_gemm_mapping.cpp runs the
// same functions on the CPU in an emulation of the kernel (cp.async groups, the
// fragment layout of the PTX ISA, the epilogue) against an int64 reference, so a mapping
// change (a new tile shape, WGMMA) is checked in CI, where there is no GPU.
//
// A block computes a kTileM x kTileN tile of y with kWarpsM x kWarpsN warps, each a
// kWarpTileM x kWarpTileN sub-tile of kFragsM x kFragsN mma fragments; K advances kTileK
// bytes per stage through a kStages-deep cp.async ring.
#pragma once

#include <cstdint>

#include "cushioncache/kernels/cuda/host_device.h"

namespace cushioncache::kernels::cuda::gemm_mapping {

inline constexpr int kTileM = 128, kTileN = 128, kTileK = 64, kStages = 3;
inline constexpr int kWarpSize = 32, kWarpsM = 2, kWarpsN = 4, kThreads = kWarpsM * kWarpsN * kWarpSize;
inline constexpr int kWarpTileM = kTileM / kWarpsM, kWarpTileN = kTileN / kWarpsN;  // 64 x 32
inline constexpr int kMmaM = 16, kMmaN = 8, kMmaK = 32;
inline constexpr int kFragsM = kWarpTileM / kMmaM, kFragsN = kWarpTileN / kMmaN;  // 4 x 4
inline constexpr int kStepsPerStage = kTileK / kMmaK;                              // 2
// cp.async moves 16 bytes per copy; the stage of A (and of W) is kTileM rows of kTileK bytes.
inline constexpr int kChunkBytes = 16, kChunksPerRow = kTileK / kChunkBytes;
inline constexpr int kChunksPerThread = kTileM * kChunksPerRow / kThreads;  // for A, and for W alike
inline constexpr int kStageBytes = (kTileM + kTileN) * kTileK;
inline constexpr int kSharedBytes = kStages * kStageBytes;
// cp.async groups still in flight when a stage is consumed: one group per stage is
// committed, kStages - 1 ahead of the one being computed, so waiting until at most
// kStages - 2 are pending means the current one has landed.
inline constexpr int kGroupsInFlight = kStages - 2;

static_assert(kTileM == kTileN, "one chunk schedule serves A and W");
static_assert(kTileM * kChunksPerRow % kThreads == 0, "every thread copies the same number of chunks");
static_assert(kChunksPerRow == 4 && kStepsPerStage == 2,
              "the K permutation below gives each of a quad's 4 lanes one 16-byte chunk per row, two mma steps");
static_assert(kSharedBytes <= 48 * 1024, "the pipeline must fit the default shared memory limit");

// Grid: blockIdx.x walks N, blockIdx.y walks M (y has the 65535 limit, M rarely needs more).
CC_HOST_DEVICE constexpr std::int64_t grid_blocks(std::int64_t extent, int tile) { return (extent + tile - 1) / tile; }
CC_HOST_DEVICE constexpr std::int64_t tile_origin(unsigned block, int tile) { return static_cast<std::int64_t>(block) * tile; }
CC_HOST_DEVICE constexpr std::int64_t k_tiles(std::int64_t k) { return (k + kTileK - 1) / kTileK; }
// The ring slot of k tile `kt`.
CC_HOST_DEVICE constexpr int stage_slot(std::int64_t kt) { return static_cast<int>(kt % kStages); }

// ---- Stage loads: global -> shared ----------------------------------------------------
// Copy `i` (0 .. kChunksPerThread - 1) of thread `tid` moves the 16 bytes at (row, col)
// of the stage's A tile, and the same (row, col) of its W tile.
struct TileByte {
  int row, col;
};
CC_HOST_DEVICE constexpr TileByte stage_chunk(int tid, int i) {
  return {(tid + i * kThreads) / kChunksPerRow, (tid + i * kThreads) % kChunksPerRow * kChunkBytes};
}
// Byte offsets inside one stage: the A tile, then the W tile.
CC_HOST_DEVICE constexpr int stage_a_offset(int row, int col) { return row * kTileK + col; }
CC_HOST_DEVICE constexpr int stage_w_offset(int row, int col) { return kTileM * kTileK + row * kTileK + col; }
// Column `col` of k tile `kt` in the whole K.
CC_HOST_DEVICE constexpr std::int64_t stage_k(std::int64_t kt, int col) { return kt * kTileK + col; }
// Whether the chunk at global (row, k) holds data; else cp.async zero-fills it, so rows
// past M or N and columns past K add nothing. K is a multiple of 16 (a precondition),
// so a chunk is wholly inside or wholly outside.
CC_HOST_DEVICE constexpr bool chunk_in_bounds(std::int64_t row, std::int64_t k, std::int64_t rows, std::int64_t depth) {
  return row < rows && k < depth;
}

// ---- Fragments: shared -> registers ----------------------------------------------------
// PTX's names: groupID = lane / 4, threadID_in_group = lane % 4.
CC_HOST_DEVICE constexpr int lane_group(int lane) { return lane / 4; }
CC_HOST_DEVICE constexpr int lane_quad(int lane) { return lane % 4; }
CC_HOST_DEVICE constexpr int warp_m_of(int warp) { return warp / kWarpsN; }
CC_HOST_DEVICE constexpr int warp_n_of(int warp) { return warp % kWarpsN; }

// The K order inside a stage is permuted: lane (g, t) loads the 16 bytes [16t, 16t + 16)
// of each of its rows with one 128-bit shared load, and mma step s takes bytes
// [16t + 8s, 16t + 8s + 8) of them as the fragment's k = {4t..4t+3, 16+4t..16+4t+3}.
// A and W are permuted alike, so every product pairs the same k and the sum is unchanged;
// in exchange a quarter-warp reads 128 contiguous bytes, free of bank conflicts.
CC_HOST_DEVICE constexpr int fragment_col(int lane) { return lane_quad(lane) * kChunkBytes; }
// Row of the stage's A tile behind half `half` (0: fragment rows 0-7, 1: rows 8-15) of A
// fragment `fm` of warp row `warp_m`.
CC_HOST_DEVICE constexpr int a_fragment_row(int warp_m, int fm, int lane, int half) {
  return warp_m * kWarpTileM + fm * kMmaM + lane_group(lane) + half * 8;
}
// Row of the stage's W tile behind B fragment `fn` of warp column `warp_n`.
CC_HOST_DEVICE constexpr int w_fragment_row(int warp_n, int fn, int lane) { return warp_n * kWarpTileN + fn * kMmaN + lane_group(lane); }
// Register a[reg] of step `step`: 32-bit word a_register_word(step, reg) of the 16 bytes
// loaded for half a_register_half(reg). PTX: a0 and a2 are row g, a1 and a3 row g + 8;
// a0 and a1 hold k 4t..4t+3, a2 and a3 hold k 16+4t..16+4t+3.
CC_HOST_DEVICE constexpr int a_register_half(int reg) { return reg % 2; }
CC_HOST_DEVICE constexpr int a_register_word(int step, int reg) { return 2 * step + reg / 2; }
// Register b[reg] of step `step`: word b_register_word(step, reg) of the W row's 16
// bytes. PTX: b0 holds k 4t..4t+3, b1 holds k 16+4t..16+4t+3, both column g.
CC_HOST_DEVICE constexpr int b_register_word(int step, int reg) { return 2 * step + reg; }

// ---- Epilogue: accumulators -> y ------------------------------------------------------
// Accumulator c[i] of fragment (fm, fn): PTX puts c0, c1 at row g and c2, c3 at row
// g + 8, columns 2t + (i % 2). Coordinates inside the block's tile.
CC_HOST_DEVICE constexpr int acc_row(int warp_m, int fm, int lane, int i) {
  return warp_m * kWarpTileM + fm * kMmaM + lane_group(lane) + (i / 2) * 8;
}
CC_HOST_DEVICE constexpr int acc_col(int warp_n, int fn, int lane, int i) {
  return warp_n * kWarpTileN + fn * kMmaN + lane_quad(lane) * 2 + i % 2;
}

}  // namespace cushioncache::kernels::cuda::gemm_mapping
