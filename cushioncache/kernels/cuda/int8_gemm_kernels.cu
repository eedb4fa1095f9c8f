#include "cushioncache/kernels/cuda/int8_gemm_kernels.h"

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>

#include "cushioncache/kernels/cuda/cuda_check.h"
#include "cushioncache/kernels/cuda/gemm_mapping.h"
#include "cushioncache/kernels/cuda/quantize_math.h"

namespace cushioncache::kernels::cuda {
namespace {

// ---------------------------------------------------------------------------------------
// Tensor-core kernel: 128 x 128 tiles of y, 8 warps, a 3-stage cp.async ring of 64-byte K
// stages (48 KiB of shared memory, the default limit). Every index comes from
// gemm_mapping.h, which the host test suite runs in an emulation of this kernel.
// ---------------------------------------------------------------------------------------
using namespace gemm_mapping;

// Every int32 in the GEMM must be exact: the per-product bounds of gemm_max_k.
static_assert(static_cast<std::int64_t>(kGemmMaxKUnsigned) * 255 * 128 <= 2147483647, "uint8 x int8 sums fit int32");
static_assert((static_cast<std::int64_t>(kGemmMaxKUnsigned) + 1) * 255 * 128 > 2147483647, "the uint8 bound is the largest");
static_assert(static_cast<std::int64_t>(kGemmMaxKSigned) * 128 * 128 <= 2147483647, "int8 x int8 sums fit int32");
static_assert((static_cast<std::int64_t>(kGemmMaxKSigned) + 1) * 128 * 128 > 2147483647, "the int8 bound is the largest");

__device__ __forceinline__ unsigned shared_address(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }

// 16 bytes global -> shared, asynchronously; zero-filled when `valid` is false (rows past
// M or N, columns past K), so the tails of the problem add nothing to the sums.
__device__ __forceinline__ void copy_16_async(void* shared, const void* global, bool valid) {
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(shared)), "l"(global), "r"(bytes));
}
__device__ __forceinline__ void commit_async() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void wait_async() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// 32-bit word i of a 128-bit load; i is a constant after unrolling, so this is a register.
__device__ __forceinline__ unsigned word(const uint4& v, int i) { return i == 0 ? v.x : (i == 1 ? v.y : (i == 2 ? v.z : v.w)); }

// D = A (16 x 32) * B (32 x 8) + D, int32 accumulation; A int8 or uint8, B int8.
template <bool kUnsignedA>
__device__ __forceinline__ void mma_16x8x32(int (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
  if constexpr (kUnsignedA) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

__device__ __forceinline__ void store(float* y, float v) { *y = v; }
__device__ __forceinline__ void store(__half* y, float v) { *y = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16* y, float v) { *y = __float2bfloat16_rn(v); }

// What the fused epilogue and the cuBLASLt epilogue share: one int32 sum to one output.
// The activation scale and zero-point are one pair (read once) or one per group of
// rows_per_scale rows (a sequence, or a token).
struct Dequantizer {
  float a_scale;
  int a_zero_point;
  const float* a_scales;       // with rows_per_scale > 0
  const float* a_zero_points;  // with rows_per_scale > 0 and uint8 activations
  std::int64_t rows_per_scale;
  const float* w_scales;
  bool w_per_channel;
  const std::int32_t* w_row_sums;
  const float* bias;

  __device__ __forceinline__ float operator()(int acc, std::int64_t row, std::int64_t col) const {
    float scale = a_scale;
    int zero_point = a_zero_point;
    if (rows_per_scale > 0) {
      const std::int64_t g = row / rows_per_scale;
      scale = a_scales[g];
      zero_point = a_zero_points != nullptr ? __float2int_rn(a_zero_points[g]) : 0;
    }
    // The zero-point correction in int32: |z * sum_k w| <= 255 * 128 * K, exact for every
    // K the precondition admits (kGemmMaxKUnsigned), where a float would round.
    if (w_row_sums != nullptr) acc -= zero_point * w_row_sums[col];
    float v = scale * w_scales[w_per_channel ? col : 0] * static_cast<float>(acc);
    if (bias != nullptr) v += bias[col];
    return v;
  }
};

__device__ __forceinline__ Dequantizer make_dequantizer(const GemmS8S8& p) {
  const bool vector = p.a_rows_per_scale > 0;
  return Dequantizer{vector ? 0.0f : *p.a_scale,
                     !vector && p.a_unsigned ? __float2int_rn(*p.a_zero_point) : 0,
                     p.a_scale,
                     p.a_unsigned ? p.a_zero_point : nullptr,
                     p.a_rows_per_scale,
                     p.w_scales,
                     p.w_per_channel,
                     p.a_unsigned ? p.w_row_sums : nullptr,
                     p.bias};
}

template <bool kUnsignedA, typename OutT>
__global__ void __launch_bounds__(kThreads) gemm_s8s8_kernel(GemmS8S8 p) {
  extern __shared__ __align__(16) unsigned char shared[];
  const int tid = threadIdx.x, lane = tid % kWarpSize, warp = tid / kWarpSize;
  const int warp_m = warp_m_of(warp), warp_n = warp_n_of(warp);
  const std::int64_t tile_m = tile_origin(blockIdx.y, kTileM), tile_n = tile_origin(blockIdx.x, kTileN);
  const unsigned char* a = static_cast<const unsigned char*>(p.a);
  const unsigned char* w = reinterpret_cast<const unsigned char*>(p.w);
  const std::int64_t tiles = k_tiles(p.k);

  auto load_stage = [&](int slot, std::int64_t kt) {
    unsigned char* stage = shared + slot * kStageBytes;
#pragma unroll
    for (int i = 0; i < kChunksPerThread; ++i) {
      const TileByte chunk = stage_chunk(tid, i);
      const std::int64_t k = stage_k(kt, chunk.col), am = tile_m + chunk.row, wn = tile_n + chunk.row;
      const bool a_ok = chunk_in_bounds(am, k, p.m, p.k), w_ok = chunk_in_bounds(wn, k, p.n, p.k);
      copy_16_async(stage + stage_a_offset(chunk.row, chunk.col), a_ok ? a + am * p.k + k : a, a_ok);
      copy_16_async(stage + stage_w_offset(chunk.row, chunk.col), w_ok ? w + wn * p.k + k : w, w_ok);
    }
  };

  int acc[kFragsM][kFragsN][4] = {};
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < tiles) load_stage(stage_slot(s), s);
    commit_async();
  }
  for (std::int64_t kt = 0; kt < tiles; ++kt) {
    wait_async<kGroupsInFlight>();
    __syncthreads();  // stage kt has landed for every thread; the slot of stage kt - 1 is free to refill
    const std::int64_t next = kt + kStages - 1;
    if (next < tiles) load_stage(stage_slot(next), next);
    commit_async();

    const unsigned char* stage = shared + stage_slot(kt) * kStageBytes;
    const int col = fragment_col(lane);
    uint4 a_rows[kFragsM][2], w_rows[kFragsN];
#pragma unroll
    for (int fm = 0; fm < kFragsM; ++fm)
#pragma unroll
      for (int half = 0; half < 2; ++half)
        a_rows[fm][half] = *reinterpret_cast<const uint4*>(stage + stage_a_offset(a_fragment_row(warp_m, fm, lane, half), col));
#pragma unroll
    for (int fn = 0; fn < kFragsN; ++fn)
      w_rows[fn] = *reinterpret_cast<const uint4*>(stage + stage_w_offset(w_fragment_row(warp_n, fn, lane), col));
#pragma unroll
    for (int step = 0; step < kStepsPerStage; ++step) {
#pragma unroll
      for (int fm = 0; fm < kFragsM; ++fm) {
        unsigned fa[4];
#pragma unroll
        for (int reg = 0; reg < 4; ++reg) fa[reg] = word(a_rows[fm][a_register_half(reg)], a_register_word(step, reg));
#pragma unroll
        for (int fn = 0; fn < kFragsN; ++fn) {
          const unsigned fb[2] = {word(w_rows[fn], b_register_word(step, 0)), word(w_rows[fn], b_register_word(step, 1))};
          mma_16x8x32<kUnsignedA>(acc[fm][fn], fa, fb);
        }
      }
    }
  }
  wait_async<0>();

  const Dequantizer dequantize = make_dequantizer(p);
  OutT* y = static_cast<OutT*>(p.y);
#pragma unroll
  for (int fm = 0; fm < kFragsM; ++fm)
#pragma unroll
    for (int fn = 0; fn < kFragsN; ++fn)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const std::int64_t row = tile_m + acc_row(warp_m, fm, lane, i), col = tile_n + acc_col(warp_n, fn, lane, i);
        if (row < p.m && col < p.n) store(y + row * p.n + col, dequantize(acc[fm][fn][i], row, col));
      }
}

template <typename OutT>
__global__ void dequantize_int32_kernel(const std::int32_t* __restrict__ acc, GemmS8S8 p) {
  const Dequantizer dequantize = make_dequantizer(p);
  OutT* y = static_cast<OutT*>(p.y);
  const std::int64_t total = p.m * p.n, stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride)
    store(y + i, dequantize(acc[i], i / p.n, i % p.n));
}

__global__ void weight_row_sums_kernel(const std::int8_t* __restrict__ w, std::int64_t k, std::int32_t* sums) {
  const std::int8_t* row = w + static_cast<std::int64_t>(blockIdx.x) * k;
  int sum = 0;
  for (std::int64_t i = threadIdx.x; i < k; i += blockDim.x) sum += row[i];
  for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  __shared__ int warp_sums[8];
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    int total = 0;
    for (int i = 0; i < static_cast<int>(blockDim.x / 32); ++i) total += warp_sums[i];
    sums[blockIdx.x] = total;
  }
}

__global__ void scale_from_absmax_kernel(const float* absmax, const unsigned* nan_count, float qmax, float* scale, std::int64_t count) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  // params_for_range's arithmetic (quantize_math.h), so an all-zero tensor gets its floor.
  const bool nan = nan_count != nullptr && *nan_count > 0;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
    scale[i] = nan ? __int_as_float(0x7fc00000) : symmetric_scale(absmax[i], qmax);
}

__global__ void asymmetric_params_kernel(const float* min, const float* max, float qmin, float qmax, float* scale, float* zero_point,
                                         std::int64_t count) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const AffineParams params = asymmetric_params(min[i], max[i], qmin, qmax);
    scale[i] = params.scale;
    zero_point[i] = params.zero_point;
  }
}

int elementwise_grid(std::int64_t work) {
  const std::int64_t blocks = (work + 255) / 256;
  return static_cast<int>(blocks < 1 ? 1 : (blocks > 4096 ? 4096 : blocks));
}

template <typename Launch>
void dispatch_output(FloatType type, Launch&& launch) {
  switch (type) {
    case FloatType::kFloat32: launch(static_cast<float*>(nullptr)); return;
    case FloatType::kFloat16: launch(static_cast<__half*>(nullptr)); return;
    case FloatType::kBFloat16: launch(static_cast<__nv_bfloat16*>(nullptr)); return;
  }
}

bool aligned_16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

void run_tensor_core(const GemmS8S8& p, Stream stream) {
  const std::int64_t grid_m = grid_blocks(p.m, kTileM), grid_n = grid_blocks(p.n, kTileN);
  if (grid_m > 65535) fail_invalid_argument("gemm_s8s8: m is above 65535 x 128 rows");
  const dim3 grid(static_cast<unsigned>(grid_n), static_cast<unsigned>(grid_m));
  dispatch_output(p.y_type, [&](auto tag) {
    using OutT = std::remove_pointer_t<decltype(tag)>;
    if (p.a_unsigned)
      gemm_s8s8_kernel<true, OutT><<<grid, kThreads, kSharedBytes, stream>>>(p);
    else
      gemm_s8s8_kernel<false, OutT><<<grid, kThreads, kSharedBytes, stream>>>(p);
  });
  check_cuda(cudaGetLastError(), "gemm_s8s8: launch of the tensor-core kernel");
}

// Every cuBLASLt call goes through one of these two: `call` names the function (and what
// it was for), so a failure says which call failed and with which status.
void check_cublas(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  fail_cuda_library("cuBLASLt", static_cast<int>(status), cublasLtGetStatusString(status), call);
}
// For clean-up, which cannot throw (destructors): the failure is logged instead.
void cleanup_cublas(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS) warn_cleanup_failure("cuBLASLt", static_cast<int>(status), cublasLtGetStatusString(status), call);
}
void cleanup_cuda(cudaError_t status, const char* call) {
  // At process exit the runtime may be unloading before a static runner dies: nothing to report.
  if (status != cudaSuccess && status != cudaErrorCudartUnloading)
    warn_cleanup_failure("CUDA", static_cast<int>(status), cudaGetErrorString(status), call);
}

// The largest power of two, up to 256, dividing both a buffer's address and its leading
// dimension in bytes: cuBLASLt's heuristic assumes 256-byte alignment unless told less,
// and may otherwise pick an algorithm whose vector loads fault on a less aligned operand
// (a row-offset view of a tensor, say).
std::uint32_t alignment(const void* p, std::int64_t leading_bytes) {
  const std::uint64_t bits = reinterpret_cast<std::uintptr_t>(p) | static_cast<std::uint64_t>(leading_bytes) | 256u;
  return static_cast<std::uint32_t>(bits & (~bits + 1));
}

// cuBLASLt is column-major. Row-major w [n, k] is a column-major k x n matrix, a [m, k] a
// column-major k x m one, and row-major y [m, n] the column-major n x m product
// w^T(k x n)^T * a(k x m): the TN layout cuBLASLt's int8 kernels require.
// Created empty and filled by create(), so the destructor releases whatever was created
// before a failing call.
struct LtLayouts {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  void create(std::int64_t m, std::int64_t n, std::int64_t k, cublasComputeType_t compute, cudaDataType_t scale_type, cudaDataType_t in,
              cudaDataType_t out) {
    check_cublas(cublasLtMatmulDescCreate(&op, compute, scale_type), "cublasLtMatmulDescCreate");
    const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
    check_cublas(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose)),
                 "cublasLtMatmulDescSetAttribute(TRANSA)");
    check_cublas(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof(keep)), "cublasLtMatmulDescSetAttribute(TRANSB)");
    check_cublas(cublasLtMatrixLayoutCreate(&a, in, static_cast<std::uint64_t>(k), static_cast<std::uint64_t>(n), k),
                 "cublasLtMatrixLayoutCreate(w)");
    check_cublas(cublasLtMatrixLayoutCreate(&b, in, static_cast<std::uint64_t>(k), static_cast<std::uint64_t>(m), k),
                 "cublasLtMatrixLayoutCreate(a)");
    check_cublas(cublasLtMatrixLayoutCreate(&c, out, static_cast<std::uint64_t>(n), static_cast<std::uint64_t>(m), n),
                 "cublasLtMatrixLayoutCreate(y)");
  }
  LtLayouts() = default;
  ~LtLayouts() {
    if (c) cleanup_cublas(cublasLtMatrixLayoutDestroy(c), "cublasLtMatrixLayoutDestroy(y)");
    if (b) cleanup_cublas(cublasLtMatrixLayoutDestroy(b), "cublasLtMatrixLayoutDestroy(a)");
    if (a) cleanup_cublas(cublasLtMatrixLayoutDestroy(a), "cublasLtMatrixLayoutDestroy(w)");
    if (op) cleanup_cublas(cublasLtMatmulDescDestroy(op), "cublasLtMatmulDescDestroy");
  }
  LtLayouts(const LtLayouts&) = delete;
  LtLayouts& operator=(const LtLayouts&) = delete;
};

struct LtPreference {
  cublasLtMatmulPreference_t handle = nullptr;
  LtPreference() { check_cublas(cublasLtMatmulPreferenceCreate(&handle), "cublasLtMatmulPreferenceCreate"); }
  ~LtPreference() { cleanup_cublas(cublasLtMatmulPreferenceDestroy(handle), "cublasLtMatmulPreferenceDestroy"); }
  LtPreference(const LtPreference&) = delete;
  LtPreference& operator=(const LtPreference&) = delete;
  template <typename T>
  void set(cublasLtMatmulPreferenceAttributes_t attribute, T value, const char* call) {
    check_cublas(cublasLtMatmulPreferenceSetAttribute(handle, attribute, &value, sizeof(value)), call);
  }
};

constexpr std::size_t kLtWorkspaceBytes = 32u << 20;

// The operands of one cuBLASLt call and their alignments (cuBLASLt's A is our w, its B
// our a, its C and D our output).
struct LtOperands {
  std::uint32_t align_a, align_b, align_c;
};

}  // namespace

// One planned cuBLASLt problem: descriptors plus the heuristic's algorithm, kept per shape
// and operand alignment so a benchmark or a model's repeated layers plan once.
struct LtPlan {
  std::unique_ptr<LtLayouts> layouts;
  cublasLtMatmulAlgo_t algo{};
};

struct Int8GemmRunner::State {
  // cuBLASLt's handle, workspace and the int32 buffer belong to one device; the runner
  // may serve several host threads (shared_runner), so the cuBLASLt path is serialised.
  std::mutex mutex;
  int device = -1;
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::int32_t* acc = nullptr;  // the int32 result of the cuBLASLt path; stream-ordered (cudaMallocAsync)
  std::size_t acc_elements = 0;
  // The stream of the latest work that used the workspace or the buffer: a call on
  // another stream first waits for it (handoff), and the buffer is freed on it.
  bool used = false;
  Stream last_stream = nullptr;
  cudaEvent_t handoff = nullptr;
  std::map<std::tuple<bool, std::int64_t, std::int64_t, std::int64_t, std::uint32_t, std::uint32_t, std::uint32_t>, LtPlan> plans;

  // Before any cuBLASLt-path work on `stream`: the device check, lazy creation, and the
  // ordering after work another stream may still run on the shared buffers.
  void prepare(Stream stream) {
    int current = 0;
    check_cuda(cudaGetDevice(&current), "Int8GemmRunner: cudaGetDevice");
    if (device < 0) device = current;
    if (device != current)
      fail_invalid_argument(("Int8GemmRunner: its cuBLASLt buffers live on device " + std::to_string(device) + ", the current device is " +
                             std::to_string(current) + " (keep one runner per device and stream: shared_runner)")
                                .c_str());
    if (handle == nullptr) check_cublas(cublasLtCreate(&handle), "cublasLtCreate");
    if (workspace == nullptr) check_cuda(cudaMalloc(&workspace, kLtWorkspaceBytes), "cudaMalloc of the cuBLASLt workspace");
    if (used && stream != last_stream) {
      if (handoff == nullptr) check_cuda(cudaEventCreateWithFlags(&handoff, cudaEventDisableTiming), "cudaEventCreateWithFlags");
      check_cuda(cudaEventRecord(handoff, last_stream), "cudaEventRecord on the runner's previous stream");
      check_cuda(cudaStreamWaitEvent(stream, handoff, 0), "cudaStreamWaitEvent for the runner's previous stream");
    }
    used = true;
    last_stream = stream;
  }

  LtPlan& plan(bool int8, std::int64_t m, std::int64_t n, std::int64_t k, const LtOperands& operands) {
    const auto key = std::make_tuple(int8, m, n, k, operands.align_a, operands.align_b, operands.align_c);
    auto found = plans.find(key);
    if (found != plans.end()) return found->second;
    LtPlan plan;
    plan.layouts = std::make_unique<LtLayouts>();
    if (int8)
      plan.layouts->create(m, n, k, CUBLAS_COMPUTE_32I, CUDA_R_32I, CUDA_R_8I, CUDA_R_32I);
    else
      plan.layouts->create(m, n, k, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16BF, CUDA_R_16BF);
    LtPreference preference;
    preference.set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, kLtWorkspaceBytes, "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
    preference.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, operands.align_a, "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT_A_BYTES)");
    preference.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, operands.align_b, "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT_B_BYTES)");
    preference.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, operands.align_c, "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT_C_BYTES)");
    preference.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, operands.align_c, "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT_D_BYTES)");
    cublasLtMatmulHeuristicResult_t result{};
    int found_count = 0;
    check_cublas(cublasLtMatmulAlgoGetHeuristic(handle, plan.layouts->op, plan.layouts->a, plan.layouts->b, plan.layouts->c, plan.layouts->c,
                                                preference.handle, 1, &result, &found_count),
                 "cublasLtMatmulAlgoGetHeuristic");
    if (found_count == 0) fail_invalid_argument("cuBLASLt has no algorithm for this GEMM shape and operand alignment");
    plan.algo = result.algo;
    return plans.emplace(key, std::move(plan)).first->second;
  }
};

void weight_row_sums(const std::int8_t* w, std::int64_t n, std::int64_t k, std::int32_t* sums, Stream stream) {
  if (n < 0 || k < 0) fail_invalid_argument("weight_row_sums: a size is negative");
  if (n > 2147483647) fail_invalid_argument("weight_row_sums: more than 2^31 - 1 rows");
  if (w == nullptr || sums == nullptr) fail_invalid_argument("weight_row_sums: a pointer is null");
  if (n == 0) return;
  weight_row_sums_kernel<<<static_cast<unsigned>(n), 256, 0, stream>>>(w, k, sums);
  check_cuda(cudaGetLastError(), "weight_row_sums: launch");
}

void scale_from_absmax(const float* absmax, const unsigned* nan_count, int qmax, float* scale, Stream stream, std::int64_t count) {
  if (absmax == nullptr || scale == nullptr) fail_invalid_argument("scale_from_absmax: a pointer is null");
  if (qmax <= 0) fail_invalid_argument("scale_from_absmax: qmax must be positive");
  if (count < 1) fail_invalid_argument("scale_from_absmax: count must be positive");
  scale_from_absmax_kernel<<<elementwise_grid(count), 256, 0, stream>>>(absmax, nan_count, static_cast<float>(qmax), scale, count);
  check_cuda(cudaGetLastError(), "scale_from_absmax: launch");
}

void asymmetric_params_from_range(const float* min, const float* max, int qmin, int qmax, float* scale, float* zero_point, Stream stream,
                                  std::int64_t count) {
  if (min == nullptr || max == nullptr || scale == nullptr || zero_point == nullptr)
    fail_invalid_argument("asymmetric_params_from_range: a pointer is null");
  if (qmin >= qmax) fail_invalid_argument("asymmetric_params_from_range: qmin must be below qmax");
  if (count < 1) fail_invalid_argument("asymmetric_params_from_range: count must be positive");
  asymmetric_params_kernel<<<elementwise_grid(count), 256, 0, stream>>>(min, max, static_cast<float>(qmin), static_cast<float>(qmax), scale,
                                                                         zero_point, count);
  check_cuda(cudaGetLastError(), "asymmetric_params_from_range: launch");
}

const char* gemm_unsupported_reason(const GemmS8S8& p, GemmBackend backend) {
  if (p.m <= 0 || p.n <= 0 || p.k <= 0) return "gemm_s8s8: m, n and k must be positive";
  // Checked before the pointers: a bound on the problem, whatever the buffers.
  if (p.a_unsigned && p.k > kGemmMaxKUnsigned)
    return "gemm_s8s8: k is above 65793, where the int32 sums of uint8 x int8 products (up to 255 * 128 * k) can overflow";
  if (!p.a_unsigned && p.k > kGemmMaxKSigned)
    return "gemm_s8s8: k is above 131071, where the int32 sums of int8 x int8 products (up to 128 * 128 * k) can overflow";
  if (p.a == nullptr || p.w == nullptr || p.y == nullptr || p.a_scale == nullptr || p.w_scales == nullptr)
    return "gemm_s8s8: a, w, y, a_scale or w_scales is null";
  if (p.a_rows_per_scale < 0) return "gemm_s8s8: a_rows_per_scale is negative";
  if (p.a_unsigned && (p.a_zero_point == nullptr || p.w_row_sums == nullptr))
    return "gemm_s8s8: uint8 activations need a_zero_point and w_row_sums (weight_row_sums)";
  if (backend == GemmBackend::kCublasLt) {
    if (p.a_unsigned) return "gemm_s8s8: cuBLASLt has no uint8 x int8 GEMM (asymmetric activations run on the tensor-core kernel)";
    if (p.k % 4 != 0 || p.n % 4 != 0) return "gemm_s8s8: cuBLASLt's int8 GEMM needs k and n to be multiples of 4";
    if (p.m > 2147483647 || p.n > 2147483647) return "gemm_s8s8: a size is above 2^31 - 1";
    return nullptr;
  }
  if (p.k % 16 != 0) return "gemm_s8s8: k must be a multiple of 16 (pad the reduction dimension with zeros)";
  if (!aligned_16(p.a) || !aligned_16(p.w)) return "gemm_s8s8: a and w must be 16-byte aligned";
  return nullptr;
}

Int8GemmRunner::Int8GemmRunner() : state_(std::make_unique<State>()) {}

Int8GemmRunner::~Int8GemmRunner() {
  State& s = *state_;
  if (s.device < 0) return;  // the cuBLASLt path never ran: nothing was created
  int previous = -1;
  const bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != s.device && cudaSetDevice(s.device) == cudaSuccess;
  // The int32 buffer is a stream-ordered allocation: cudaFree would not wait for the work
  // still queued on it. Free it in stream order, after the last work that used it (every
  // earlier stream was made to precede that one), then wait for that stream before the
  // synchronous frees: queued cuBLASLt calls still use the workspace.
  if (s.acc != nullptr) cleanup_cuda(cudaFreeAsync(s.acc, s.last_stream), "cudaFreeAsync of the int32 buffer");
  if (s.used) cleanup_cuda(cudaStreamSynchronize(s.last_stream), "cudaStreamSynchronize before freeing the cuBLASLt workspace");
  if (s.workspace != nullptr) cleanup_cuda(cudaFree(s.workspace), "cudaFree of the cuBLASLt workspace");
  if (s.handoff != nullptr) cleanup_cuda(cudaEventDestroy(s.handoff), "cudaEventDestroy");
  s.plans.clear();  // descriptors before the handle
  if (s.handle != nullptr) cleanup_cublas(cublasLtDestroy(s.handle), "cublasLtDestroy");
  if (switched) cleanup_cuda(cudaSetDevice(previous), "cudaSetDevice back");
}

GemmBackend Int8GemmRunner::pick(const GemmS8S8& p) const {
  if (p.m <= 64 && gemm_unsupported_reason(p, GemmBackend::kCublasLt) == nullptr) return GemmBackend::kCublasLt;
  if (gemm_unsupported_reason(p, GemmBackend::kTensorCore) == nullptr) return GemmBackend::kTensorCore;
  return GemmBackend::kCublasLt;
}

void Int8GemmRunner::run(const GemmS8S8& p, GemmBackend backend, Stream stream) {
  if (backend == GemmBackend::kAuto) backend = pick(p);
  if (const char* reason = gemm_unsupported_reason(p, backend)) fail_invalid_argument(reason);
  if (backend == GemmBackend::kTensorCore) {
    run_tensor_core(p, stream);  // no runner state: nothing to serialise
    return;
  }
  State& s = *state_;
  const std::lock_guard<std::mutex> lock(s.mutex);
  s.prepare(stream);
  const std::size_t elements = static_cast<std::size_t>(p.m * p.n);
  if (s.acc_elements < elements) {
    // `stream` is now the last user of the old buffer (prepare ordered it after the others).
    if (s.acc != nullptr) check_cuda(cudaFreeAsync(s.acc, stream), "cudaFreeAsync of the int32 buffer");
    s.acc = nullptr;
    s.acc_elements = 0;
    check_cuda(cudaMallocAsync(reinterpret_cast<void**>(&s.acc), elements * sizeof(std::int32_t), stream), "cudaMallocAsync of the int32 buffer");
    s.acc_elements = elements;
  }
  const LtOperands operands{alignment(p.w, p.k), alignment(p.a, p.k), alignment(s.acc, p.n * 4)};
  LtPlan& plan = s.plan(true, p.m, p.n, p.k, operands);
  const std::int32_t one = 1, zero = 0;
  check_cublas(cublasLtMatmul(s.handle, plan.layouts->op, &one, p.w, plan.layouts->a, p.a, plan.layouts->b, &zero, s.acc, plan.layouts->c,
                              s.acc, plan.layouts->c, &plan.algo, s.workspace, kLtWorkspaceBytes, stream),
               "cublasLtMatmul (int8)");
  dispatch_output(p.y_type, [&](auto tag) {
    using OutT = std::remove_pointer_t<decltype(tag)>;
    dequantize_int32_kernel<OutT><<<elementwise_grid(p.m * p.n), 256, 0, stream>>>(s.acc, p);
  });
  check_cuda(cudaGetLastError(), "gemm_s8s8: launch of the dequantizing epilogue");
}

void Int8GemmRunner::bf16_gemm(std::int64_t m, std::int64_t n, std::int64_t k, const void* a, const void* w, void* y, Stream stream) {
  if (m <= 0 || n <= 0 || k <= 0) fail_invalid_argument("bf16_gemm: m, n and k must be positive");
  if (a == nullptr || w == nullptr || y == nullptr) fail_invalid_argument("bf16_gemm: a pointer is null");
  State& s = *state_;
  const std::lock_guard<std::mutex> lock(s.mutex);
  s.prepare(stream);
  const LtOperands operands{alignment(w, k * 2), alignment(a, k * 2), alignment(y, n * 2)};
  LtPlan& plan = s.plan(false, m, n, k, operands);
  const float one = 1.0f, zero = 0.0f;
  check_cublas(cublasLtMatmul(s.handle, plan.layouts->op, &one, w, plan.layouts->a, a, plan.layouts->b, &zero, y, plan.layouts->c, y,
                              plan.layouts->c, &plan.algo, s.workspace, kLtWorkspaceBytes, stream),
               "cublasLtMatmul (bf16)");
}

Int8GemmRunner& shared_runner(int device, Stream stream) {
  if (device < 0) fail_invalid_argument("shared_runner: the device index is negative");
  static std::mutex mutex;
  // Never destroyed: a destructor at exit would call into a CUDA runtime that may be
  // unloading already, and the process's end frees the memory anyway.
  static auto* const runners = new std::map<std::pair<int, Stream>, std::unique_ptr<Int8GemmRunner>>();
  const std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<Int8GemmRunner>& runner = (*runners)[{device, stream}];
  if (runner == nullptr) runner = std::make_unique<Int8GemmRunner>();
  return *runner;
}

}  // namespace cushioncache::kernels::cuda
