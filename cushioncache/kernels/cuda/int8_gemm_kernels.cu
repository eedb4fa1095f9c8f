#include "cushioncache/kernels/cuda/int8_gemm_kernels.h"

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>

#include "cushioncache/kernels/cuda/cuda_check.h"

namespace cushioncache::kernels::cuda {
namespace {

// ---------------------------------------------------------------------------------------
// Tensor-core kernel. A block computes a 128 x 128 tile of y with 8 warps (2 along M x 4
// along N, 64 x 32 each); K advances 64 bytes per stage through a 3-stage cp.async ring
// (3 x (128 + 128) x 64 B = 48 KiB of shared memory, the default limit).
// ---------------------------------------------------------------------------------------
constexpr int kTileM = 128, kTileN = 128, kTileK = 64, kStages = 3;
constexpr int kWarpsM = 2, kWarpsN = 4, kThreads = kWarpsM * kWarpsN * 32;
constexpr int kWarpTileM = kTileM / kWarpsM, kWarpTileN = kTileN / kWarpsN;  // 64 x 32
constexpr int kMmaM = 16, kMmaN = 8;
constexpr int kFragsM = kWarpTileM / kMmaM, kFragsN = kWarpTileN / kMmaN;  // 4 x 4
constexpr int kStageBytes = (kTileM + kTileN) * kTileK;
static_assert(kStages * kStageBytes <= 48 * 1024, "the pipeline must fit the default shared memory limit");

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
struct Dequantizer {
  float a_scale;
  int a_zero_point;
  const float* w_scales;
  bool w_per_channel;
  const std::int32_t* w_row_sums;
  const float* bias;

  __device__ __forceinline__ float operator()(int acc, std::int64_t col) const {
    // The zero-point correction in int32: |z * sum_k w| <= 255 * 127 * K stays exact for
    // every K a model has, where a float would round a large sum.
    if (w_row_sums != nullptr) acc -= a_zero_point * w_row_sums[col];
    float v = a_scale * w_scales[w_per_channel ? col : 0] * static_cast<float>(acc);
    if (bias != nullptr) v += bias[col];
    return v;
  }
};

__device__ __forceinline__ Dequantizer make_dequantizer(const GemmS8S8& p) {
  return Dequantizer{*p.a_scale, p.a_unsigned ? __float2int_rn(*p.a_zero_point) : 0, p.w_scales, p.w_per_channel,
                     p.a_unsigned ? p.w_row_sums : nullptr, p.bias};
}

// The K order inside a 64-byte stage is permuted: thread t of a quad reads 16 contiguous
// bytes [16t, 16t + 16) of its row, and the two mma steps of the stage take bytes
// [16t + 8s, 16t + 8s + 8) as the fragment's k = {4t..4t+3, 16+4t..16+4t+3}. A and B are
// permuted alike, so every product pairs the same k and the sum is unchanged; in exchange
// each fragment row is one 128-bit shared load, and a quarter-warp reads 128 contiguous
// bytes (two 64-byte rows), free of bank conflicts without padding.
template <bool kUnsignedA, typename OutT>
__global__ void __launch_bounds__(kThreads) gemm_s8s8_kernel(GemmS8S8 p) {
  extern __shared__ __align__(16) unsigned char shared[];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int warp_m = warp / kWarpsN, warp_n = warp % kWarpsN;
  const int group = lane / 4, quad = lane % 4;
  const std::int64_t tile_m = static_cast<std::int64_t>(blockIdx.y) * kTileM;
  const std::int64_t tile_n = static_cast<std::int64_t>(blockIdx.x) * kTileN;
  const unsigned char* a = static_cast<const unsigned char*>(p.a);
  const unsigned char* w = reinterpret_cast<const unsigned char*>(p.w);
  const std::int64_t k_tiles = (p.k + kTileK - 1) / kTileK;

  // Each thread moves 2 chunks of A and 2 of W per stage: 128 rows x 4 chunks of 16 bytes.
  auto load_stage = [&](int stage, std::int64_t k_tile) {
    unsigned char* sa = shared + stage * kStageBytes;
    unsigned char* sw = sa + kTileM * kTileK;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int chunk = tid + i * kThreads, row = chunk / 4, col = (chunk % 4) * 16;
      const std::int64_t k = k_tile * kTileK + col;
      const std::int64_t am = tile_m + row, wn = tile_n + row;
      const bool a_ok = am < p.m && k < p.k, w_ok = wn < p.n && k < p.k;
      copy_16_async(sa + row * kTileK + col, a_ok ? a + am * p.k + k : a, a_ok);
      copy_16_async(sw + row * kTileK + col, w_ok ? w + wn * p.k + k : w, w_ok);
    }
  };

  int acc[kFragsM][kFragsN][4] = {};
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) load_stage(s, s);
    commit_async();
  }
  for (std::int64_t kt = 0; kt < k_tiles; ++kt) {
    wait_async<kStages - 2>();
    __syncthreads();  // stage kt has landed for every thread; stage kt - 1 is free to refill
    const std::int64_t next = kt + kStages - 1;
    if (next < k_tiles) load_stage(static_cast<int>(next % kStages), next);
    commit_async();

    const unsigned char* sa = shared + static_cast<int>(kt % kStages) * kStageBytes;
    const unsigned char* sw = sa + kTileM * kTileK;
    uint4 a_rows[kFragsM][2], w_rows[kFragsN];
#pragma unroll
    for (int fm = 0; fm < kFragsM; ++fm)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = warp_m * kWarpTileM + fm * kMmaM + group + half * 8;
        a_rows[fm][half] = *reinterpret_cast<const uint4*>(sa + row * kTileK + quad * 16);
      }
#pragma unroll
    for (int fn = 0; fn < kFragsN; ++fn) {
      const int row = warp_n * kWarpTileN + fn * kMmaN + group;
      w_rows[fn] = *reinterpret_cast<const uint4*>(sw + row * kTileK + quad * 16);
    }
#pragma unroll
    for (int step = 0; step < 2; ++step) {
#pragma unroll
      for (int fm = 0; fm < kFragsM; ++fm) {
        const unsigned fa[4] = {step == 0 ? a_rows[fm][0].x : a_rows[fm][0].z, step == 0 ? a_rows[fm][1].x : a_rows[fm][1].z,
                                step == 0 ? a_rows[fm][0].y : a_rows[fm][0].w, step == 0 ? a_rows[fm][1].y : a_rows[fm][1].w};
#pragma unroll
        for (int fn = 0; fn < kFragsN; ++fn) {
          const unsigned fb[2] = {step == 0 ? w_rows[fn].x : w_rows[fn].z, step == 0 ? w_rows[fn].y : w_rows[fn].w};
          mma_16x8x32<kUnsignedA>(acc[fm][fn], fa, fb);
        }
      }
    }
  }
  wait_async<0>();

  // Accumulator fragment: d0, d1 at (group, 2 quad + {0, 1}), d2, d3 at (group + 8, same).
  const Dequantizer dequantize = make_dequantizer(p);
  OutT* y = static_cast<OutT*>(p.y);
#pragma unroll
  for (int fm = 0; fm < kFragsM; ++fm)
#pragma unroll
    for (int fn = 0; fn < kFragsN; ++fn)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const std::int64_t row = tile_m + warp_m * kWarpTileM + fm * kMmaM + group + (i / 2) * 8;
        const std::int64_t col = tile_n + warp_n * kWarpTileN + fn * kMmaN + quad * 2 + (i % 2);
        if (row < p.m && col < p.n) store(y + row * p.n + col, dequantize(acc[fm][fn][i], col));
      }
}

template <typename OutT>
__global__ void dequantize_int32_kernel(const std::int32_t* __restrict__ acc, GemmS8S8 p) {
  const Dequantizer dequantize = make_dequantizer(p);
  OutT* y = static_cast<OutT*>(p.y);
  const std::int64_t total = p.m * p.n, stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride)
    store(y + i, dequantize(acc[i], i % p.n));
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

__global__ void scale_from_absmax_kernel(const float* absmax, const unsigned* nan_count, float qmax, float* scale) {
  // The floor params_for_range puts under a scale (quant/fake_quant.cpp), so an all-zero
  // tensor quantizes as it does on the CPU.
  *scale = nan_count != nullptr && *nan_count > 0 ? __int_as_float(0x7fc00000) : fmaxf(*absmax / qmax, 1e-10f);
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
  const std::int64_t grid_m = (p.m + kTileM - 1) / kTileM, grid_n = (p.n + kTileN - 1) / kTileN;
  if (grid_m > 65535) fail_invalid_argument("gemm_s8s8: m is above 65535 x 128 rows");
  const dim3 grid(static_cast<unsigned>(grid_n), static_cast<unsigned>(grid_m));
  constexpr int shared_bytes = kStages * kStageBytes;
  dispatch_output(p.y_type, [&](auto tag) {
    using OutT = std::remove_pointer_t<decltype(tag)>;
    if (p.a_unsigned)
      gemm_s8s8_kernel<true, OutT><<<grid, kThreads, shared_bytes, stream>>>(p);
    else
      gemm_s8s8_kernel<false, OutT><<<grid, kThreads, shared_bytes, stream>>>(p);
  });
  check_cuda(cudaGetLastError(), "gemm_s8s8: launch of the tensor-core kernel");
}

void check_cublas(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  fail_cuda_library("cuBLASLt", static_cast<int>(status), cublasLtGetStatusString(status), what);
}

// cuBLASLt is column-major. Row-major w [n, k] is a column-major k x n matrix, a [m, k] a
// column-major k x m one, and row-major y [m, n] the column-major n x m product
// w^T(k x n)^T * a(k x m): the TN layout cuBLASLt's int8 kernels require.
struct LtLayouts {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  LtLayouts(std::int64_t m, std::int64_t n, std::int64_t k, cublasComputeType_t compute, cudaDataType_t scale_type, cudaDataType_t in,
            cudaDataType_t out) {
    check_cublas(cublasLtMatmulDescCreate(&op, compute, scale_type), "creating the matmul descriptor");
    const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
    check_cublas(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose)), "setting TRANSA");
    check_cublas(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof(keep)), "setting TRANSB");
    check_cublas(cublasLtMatrixLayoutCreate(&a, in, static_cast<std::uint64_t>(k), static_cast<std::uint64_t>(n), k), "layout of w");
    check_cublas(cublasLtMatrixLayoutCreate(&b, in, static_cast<std::uint64_t>(k), static_cast<std::uint64_t>(m), k), "layout of a");
    check_cublas(cublasLtMatrixLayoutCreate(&c, out, static_cast<std::uint64_t>(n), static_cast<std::uint64_t>(m), n), "layout of y");
  }
  ~LtLayouts() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
  LtLayouts(const LtLayouts&) = delete;
  LtLayouts& operator=(const LtLayouts&) = delete;
};

constexpr std::size_t kLtWorkspaceBytes = 32u << 20;

}  // namespace

// One planned cuBLASLt problem: descriptors plus the heuristic's algorithm, kept per shape
// so a benchmark or a model's repeated layers plan once.
struct LtPlan {
  std::unique_ptr<LtLayouts> layouts;
  cublasLtMatmulAlgo_t algo{};
};

struct Int8GemmRunner::State {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::int32_t* acc = nullptr;  // the int32 result of the cuBLASLt path
  std::size_t acc_elements = 0;
  std::map<std::tuple<bool, std::int64_t, std::int64_t, std::int64_t>, LtPlan> plans;  // (int8?, m, n, k)

  LtPlan& plan(bool int8, std::int64_t m, std::int64_t n, std::int64_t k) {
    auto found = plans.find({int8, m, n, k});
    if (found != plans.end()) return found->second;
    LtPlan plan;
    plan.layouts = int8 ? std::make_unique<LtLayouts>(m, n, k, CUBLAS_COMPUTE_32I, CUDA_R_32I, CUDA_R_8I, CUDA_R_32I)
                        : std::make_unique<LtLayouts>(m, n, k, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16BF, CUDA_R_16BF);
    cublasLtMatmulPreference_t preference = nullptr;
    check_cublas(cublasLtMatmulPreferenceCreate(&preference), "creating the matmul preference");
    const std::size_t workspace_bytes = kLtWorkspaceBytes;
    cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes, sizeof(workspace_bytes));
    cublasLtMatmulHeuristicResult_t result{};
    int found_count = 0;
    const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle, plan.layouts->op, plan.layouts->a, plan.layouts->b,
                                                                  plan.layouts->c, plan.layouts->c, preference, 1, &result, &found_count);
    cublasLtMatmulPreferenceDestroy(preference);
    check_cublas(status, "asking cuBLASLt for an algorithm");
    if (found_count == 0) fail_invalid_argument("cuBLASLt has no algorithm for this GEMM shape");
    plan.algo = result.algo;
    return plans.emplace(std::make_tuple(int8, m, n, k), std::move(plan)).first->second;
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

void scale_from_absmax(const float* absmax, const unsigned* nan_count, int qmax, float* scale, Stream stream) {
  if (absmax == nullptr || scale == nullptr) fail_invalid_argument("scale_from_absmax: a pointer is null");
  if (qmax <= 0) fail_invalid_argument("scale_from_absmax: qmax must be positive");
  scale_from_absmax_kernel<<<1, 1, 0, stream>>>(absmax, nan_count, static_cast<float>(qmax), scale);
  check_cuda(cudaGetLastError(), "scale_from_absmax: launch");
}

const char* gemm_unsupported_reason(const GemmS8S8& p, GemmBackend backend) {
  if (p.m <= 0 || p.n <= 0 || p.k <= 0) return "gemm_s8s8: m, n and k must be positive";
  if (p.a == nullptr || p.w == nullptr || p.y == nullptr || p.a_scale == nullptr || p.w_scales == nullptr)
    return "gemm_s8s8: a, w, y, a_scale or w_scales is null";
  if (p.a_unsigned && (p.a_zero_point == nullptr || p.w_row_sums == nullptr))
    return "gemm_s8s8: uint8 activations need a_zero_point and w_row_sums (weight_row_sums)";
  if (backend == GemmBackend::kCublasLt) {
    if (p.a_unsigned) return "gemm_s8s8: cuBLASLt has no uint8 x int8 GEMM (asymmetric activations run on the tensor-core kernel)";
    if (p.k % 4 != 0 || p.n % 4 != 0) return "gemm_s8s8: cuBLASLt's int8 GEMM needs k and n to be multiples of 4";
    if (p.m > 2147483647 || p.n > 2147483647 || p.k > 2147483647) return "gemm_s8s8: a size is above 2^31 - 1";
    return nullptr;
  }
  if (p.k % 16 != 0) return "gemm_s8s8: k must be a multiple of 16 (pad the reduction dimension with zeros)";
  if (!aligned_16(p.a) || !aligned_16(p.w)) return "gemm_s8s8: a and w must be 16-byte aligned";
  return nullptr;
}

Int8GemmRunner::Int8GemmRunner() : state_(std::make_unique<State>()) {}

Int8GemmRunner::~Int8GemmRunner() {
  if (state_->acc) cudaFree(state_->acc);
  if (state_->workspace) cudaFree(state_->workspace);
  if (state_->handle) cublasLtDestroy(state_->handle);
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
    run_tensor_core(p, stream);
    return;
  }
  State& s = *state_;
  if (s.handle == nullptr) check_cublas(cublasLtCreate(&s.handle), "creating the cuBLASLt handle");
  if (s.workspace == nullptr) check_cuda(cudaMalloc(&s.workspace, kLtWorkspaceBytes), "allocating the cuBLASLt workspace");
  const std::size_t elements = static_cast<std::size_t>(p.m * p.n);
  if (s.acc_elements < elements) {
    // Stream-ordered: work still queued on the old buffer finishes before it is freed.
    if (s.acc) check_cuda(cudaFreeAsync(s.acc, stream), "freeing the int32 buffer");
    s.acc = nullptr;
    check_cuda(cudaMallocAsync(reinterpret_cast<void**>(&s.acc), elements * sizeof(std::int32_t), stream), "allocating the int32 buffer");
    s.acc_elements = elements;
  }
  LtPlan& plan = s.plan(true, p.m, p.n, p.k);
  const std::int32_t one = 1, zero = 0;
  check_cublas(cublasLtMatmul(s.handle, plan.layouts->op, &one, p.w, plan.layouts->a, p.a, plan.layouts->b, &zero, s.acc, plan.layouts->c,
                              s.acc, plan.layouts->c, &plan.algo, s.workspace, kLtWorkspaceBytes, stream),
               "cuBLASLt int8 matmul");
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
  if (s.handle == nullptr) check_cublas(cublasLtCreate(&s.handle), "creating the cuBLASLt handle");
  if (s.workspace == nullptr) check_cuda(cudaMalloc(&s.workspace, kLtWorkspaceBytes), "allocating the cuBLASLt workspace");
  LtPlan& plan = s.plan(false, m, n, k);
  const float one = 1.0f, zero = 0.0f;
  check_cublas(cublasLtMatmul(s.handle, plan.layouts->op, &one, w, plan.layouts->a, a, plan.layouts->b, &zero, y, plan.layouts->c, y,
                              plan.layouts->c, &plan.algo, s.workspace, kLtWorkspaceBytes, stream),
               "cuBLASLt bf16 matmul");
}

}  // namespace cushioncache::kernels::cuda
