// Fused prefill attention for Hopper (sm_90a): warpgroup matrix instructions (wgmma) read Q and the K/V tiles
// straight from shared memory, where the tensor-memory accelerator (TMA) lays them out with the 128-byte
// swizzle wgmma expects. Each CTA owns 128 query rows: two consumer warpgroups of 64 rows each, plus a
// producer warpgroup that streams 128-key K/V tiles through a three-stage ring guarded by mbarriers. The
// probabilities go from the score accumulators to the P*V product in registers, so the score matrix never
// reaches shared or device memory. The exponentials stay off the tensor cores' critical path twice over:
// the two warpgroups take turns issuing their products (one runs its softmax while the other's products
// run), and within a warpgroup the next tile's softmax runs while its P*V product is still in flight.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "backend/cuda/attention_impl.cuh"
#include "backend/cuda/check.h"
#include "backend/cuda/launch.h"
#include "backend/cuda/mbarrier.cuh"
#include "backend/cuda/rows.cuh"
#include "backend/cuda/tensor_map.h"

namespace metallic::cuda::attn {
namespace {

constexpr int kGroupRows = 64;  // query rows of one consumer warpgroup (the wgmma M)
constexpr int kGroups = 2;      // consumer warpgroups
constexpr int kBlockM = kGroups * kGroupRows;
constexpr int kBlockN = 128;  // keys per tile
// K/V ring depth: with two stages the next tile's copy is still in flight when its scores are due (measured
// on an H200, B8 H32 S2048 D128: 25% slower than three).
constexpr int kStages = 3;
constexpr int kConsumerThreads = 128 * kGroups;
// One producer warpgroup: a single thread issues the copies, and the group hands most of its registers
// to the consumers (setmaxnreg), which hold the output, score and probability tiles in registers.
constexpr int kThreads = kConsumerThreads + 128;
constexpr int kProducerRegs = 40, kConsumerRegs = 232;
static_assert(128 * kProducerRegs + kConsumerThreads * kConsumerRegs <= 65536, "the register file");
constexpr int kCols = kTmaCols;  // elements of one 128-byte swizzled column block
constexpr int kTmaRows = 128;    // rows of one K/V copy; Q copies take kGroupRows
// Scores and probabilities of one 128-key tile for this thread's two rows: element i sits in row
// 8 * ((i >> 1) & 1) of the thread's pair and column 8 * (i >> 2) + 2 * (lane & 3) + (i & 1).
constexpr int kScoreRegs = kBlockN / 2;

// Shared memory: Q as [group][column block][64 rows][64], then kStages x (K, V) as [column block][128][64];
// every block is 1024-byte aligned so that the swizzle TMA writes is the one wgmma reads.
template <int D>
struct Smem {
  static constexpr int kQGroupBytes = kGroupRows * D * 2;
  static constexpr int kQBlockBytes = kGroupRows * kCols * 2;
  static constexpr int kTileBytes = kBlockN * D * 2;
  static constexpr int kBlockBytes = kBlockN * kCols * 2;
  static constexpr int kStageBytes = 2 * kTileBytes;
  static constexpr int kBytes = kGroups * kQGroupBytes + kStages * kStageBytes;
  static constexpr int kAlloc = kBytes + 1024;  // room to align the dynamic window
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MTL_FLASH_SM90_DEVICE 1
#endif

#ifdef MTL_FLASH_SM90_DEVICE

// Named barriers 1 and 2 order the two consumer warpgroups' turns on the tensor cores (0 is __syncthreads).
__device__ __forceinline__ void turn_wait(int group) {
  asm volatile("bar.sync %0, %1;" ::"r"(1 + group), "n"(kConsumerThreads) : "memory");
}
__device__ __forceinline__ void turn_pass(int group) {
  asm volatile("bar.arrive %0, %1;" ::"r"(2 - group), "n"(kConsumerThreads) : "memory");
}

// Shared-memory matrix descriptor for a 128-byte swizzled operand: start address, leading and stride byte
// offsets (all in 16-byte units) and the swizzle mode in the top bits.
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr, uint32_t lead_bytes, uint32_t stride_bytes) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>(lead_bytes >> 4) << 16) |
         (static_cast<uint64_t>(stride_bytes >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// Keeps the compiler from moving reads or writes of accumulators across the asynchronous products.
template <int N>
__device__ __forceinline__ void pin(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

// ---- wgmma wrappers (one per operand shape this kernel uses) ----
// The PTX differs between bf16 and f16 only in the element type's name, so each wrapper is a macro over it.
#define MTL_ACC8(i)                                                                           \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
      "+f"(d[i + 6]), "+f"(d[i + 7])
#define MTL_ACC32 MTL_ACC8(0), MTL_ACC8(8), MTL_ACC8(16), MTL_ACC8(24)
#define MTL_ACC64 MTL_ACC32, MTL_ACC8(32), MTL_ACC8(40), MTL_ACC8(48), MTL_ACC8(56)
#define MTL_REGS32                                                                         \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, " \
  "%19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define MTL_REGS64                                                                         \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, " \
  "%19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, "  \
  "%36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, "  \
  "%53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

// D[64 x 128] (+)= A[64 x 16] * B[16 x 128], both from shared memory (K-major, 128-byte swizzle).
#define MTL_WGMMA_SS_N128(TY)                                                 \
  asm volatile(                                                               \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                            \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " " MTL_REGS64 \
      ", %64, %65, p, 1, 1, 0, 0;\n}\n"                                       \
      : MTL_ACC64                                                             \
      : "l"(a), "l"(b), "r"(accumulate))
template <class T>
__device__ __forceinline__ void wgmma_ss_n128(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    MTL_WGMMA_SS_N128("bf16");
  else
    MTL_WGMMA_SS_N128("f16");
}

// D[64 x 128] += A[64 x 16] * B[16 x 128], A from registers, B from shared memory (N-major, 128-byte
// swizzle).
#define MTL_WGMMA_RS_N128(TY)                                                 \
  asm volatile(                                                               \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                            \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " " MTL_REGS64 \
      ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"                         \
      : MTL_ACC64                                                             \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1))
template <class T>
__device__ __forceinline__ void wgmma_rs_n128(float (&d)[64], const uint32_t (&a)[4], uint64_t b) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    MTL_WGMMA_RS_N128("bf16");
  else
    MTL_WGMMA_RS_N128("f16");
}

// D[64 x 64] += A[64 x 16] * B[16 x 64], A from registers, B from shared memory (N-major, 128-byte swizzle).
#define MTL_WGMMA_RS_N64(TY)                                                 \
  asm volatile(                                                              \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                           \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " " MTL_REGS32 \
      ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"                        \
      : MTL_ACC32                                                            \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1))
template <class T>
__device__ __forceinline__ void wgmma_rs_n64(float (&d)[32], const uint32_t (&a)[4], uint64_t b) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    MTL_WGMMA_RS_N64("bf16");
  else
    MTL_WGMMA_RS_N64("f16");
}

#undef MTL_WGMMA_RS_N64
#undef MTL_WGMMA_RS_N128
#undef MTL_WGMMA_SS_N128
#undef MTL_REGS64
#undef MTL_REGS32
#undef MTL_ACC64
#undef MTL_ACC32
#undef MTL_ACC8

#endif  // MTL_FLASH_SM90_DEVICE

template <class T, int D>
__global__ void __launch_bounds__(kThreads, 1)
    flash_sm90_kernel(const __grid_constant__ CUtensorMap q_map, const __grid_constant__ CUtensorMap k_map,
                      const __grid_constant__ CUtensorMap v_map, Params p) {
#ifdef MTL_FLASH_SM90_DEVICE
  using L = Smem<D>;
  extern __shared__ unsigned char smem_raw[];
  __shared__ __align__(8) uint64_t bars[2 * kStages + 1];  // full[stage], empty[stage], Q
  const uint32_t base = (smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t q_smem = base, kv_smem = base + kGroups * L::kQGroupBytes;
  const uint32_t full_bar = smem_addr(&bars[0]), empty_bar = smem_addr(&bars[kStages]);
  const uint32_t q_bar = smem_addr(&bars[2 * kStages]);

  const int warp = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  // Heaviest causal blocks first, so the short ones fill the tail of the grid.
  const int m0 = static_cast<int>(gridDim.x - 1 - blockIdx.x) * kBlockM;
  const int h = static_cast<int>(blockIdx.y), b = static_cast<int>(blockIdx.z);
  const int kvh = h / p.group;
  const int sk = keys_of(p, b);
  int64_t key_end = sk;
  if (p.causal) {
    const int64_t visible = static_cast<int64_t>(min(m0 + kBlockM, p.sq)) + p.query_offset;
    key_end = visible < 0 ? 0 : (visible < key_end ? visible : key_end);
  }
  const int n_tiles = static_cast<int>((key_end + kBlockN - 1) / kBlockN);

  if (threadIdx.x == 0) {
#pragma unroll
    for (int st = 0; st < kStages; ++st) {
      mbar_init(full_bar + 8 * st, 1);
      mbar_init(empty_bar + 8 * st, kConsumerThreads / 32);
    }
    mbar_init(q_bar, 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();

  if (warp >= kConsumerThreads / 32) {  // the producer
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kProducerRegs));
    if (warp == kConsumerThreads / 32 && lane == 0 && n_tiles > 0) {
      mbar_expect_tx(q_bar, kGroups * L::kQGroupBytes);
#pragma unroll
      for (int g = 0; g < kGroups; ++g)
#pragma unroll
        for (int c = 0; c < D / kCols; ++c)
          tma_load(q_smem + g * L::kQGroupBytes + c * L::kQBlockBytes, &q_map, c * kCols, m0 + g * kGroupRows,
                   h, b, q_bar);
      for (int j = 0; j < n_tiles; ++j) {
        const int st = j % kStages;
        if (j >= kStages) mbar_wait(empty_bar + 8 * st, ((j / kStages) - 1) & 1);
        const uint32_t ks = kv_smem + st * L::kStageBytes, vs = ks + L::kTileBytes;
        mbar_expect_tx(full_bar + 8 * st, L::kStageBytes);
#pragma unroll
        for (int c = 0; c < D / kCols; ++c) {
          tma_load(ks + c * L::kBlockBytes, &k_map, c * kCols, j * kBlockN, kvh, b, full_bar + 8 * st);
          tma_load(vs + c * L::kBlockBytes, &v_map, c * kCols, j * kBlockN, kvh, b, full_bar + 8 * st);
        }
      }
    }
    return;
  }

  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kConsumerRegs));
  const int group = warp >> 2, g = lane >> 2, t = lane & 3;
  const int group_row0 = m0 + group * kGroupRows;
  const int row0 = group_row0 + (warp & 3) * 16 + g;  // this thread's rows: row0 and row0 + 8
  float o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f}, corr[2] = {1.0f, 1.0f};

  if (n_tiles > 0) {
    float s[kScoreRegs];
    uint32_t pa[kBlockN / 16][4];
    const uint32_t qg = q_smem + group * L::kQGroupBytes;

    // S = Q K^T: both operands K-major; a 16-wide step moves 32 bytes inside a swizzled 128-byte row.
    const auto issue_qk = [&](int st) {
      const uint32_t ks = kv_smem + st * L::kStageBytes;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint64_t da = smem_desc(qg + (kk >> 2) * L::kQBlockBytes + (kk & 3) * 32, 0, 1024);
        const uint64_t db = smem_desc(ks + (kk >> 2) * L::kBlockBytes + (kk & 3) * 32, 0, 1024);
        wgmma_ss_n128<T>(s, da, db, kk > 0);
      }
    };
    // O += P V: V is N-major (D contiguous); 8-key groups are 1024 bytes apart, 64-column blocks a block
    // apart.
    const auto issue_pv = [&](int st) {
      const uint32_t vs = kv_smem + st * L::kStageBytes + L::kTileBytes;
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        const uint64_t db = smem_desc(vs + kk * 2048, L::kBlockBytes, 1024);
        if constexpr (D == 128)
          wgmma_rs_n128<T>(o, pa[kk], db);
        else
          wgmma_rs_n64<T>(o, pa[kk], db);
      }
    };
    const auto softmax = [&](int j) {
      const int n0 = j * kBlockN;
      // Only tiles that cross the end of the keys or this group's diagonal need per-element masking.
      if (n0 + kBlockN > sk || (p.causal && n0 + kBlockN - 1 > group_row0 + p.query_offset)) {
#pragma unroll
        for (int i = 0; i < kScoreRegs; ++i) {
          const int col = n0 + 8 * (i >> 2) + 2 * t + (i & 1);
          const int64_t row = row0 + 8 * ((i >> 1) & 1);
          if (col >= sk || (p.causal && col > row + p.query_offset)) s[i] = -INFINITY;
        }
      }
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float mx = -INFINITY;
#pragma unroll
        for (int c = 0; c < kBlockN / 8; ++c)
          mx = fmaxf(mx, fmaxf(s[4 * c + 2 * half], s[4 * c + 2 * half + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        // The scale is positive, so the scaled maximum is the maximum of the scaled scores.
        const float m_new = fmaxf(row_max[half], mx * p.scale_log2);
        // With nothing seen yet the max is -inf; subtracting 0 instead keeps exp2 at 0 rather than NaN.
        const float base_val = m_new == -INFINITY ? 0.0f : m_new;
        corr[half] = fast_exp2(row_max[half] - base_val);
        row_max[half] = m_new;
        float sum = 0.0f;
#pragma unroll
        for (int c = 0; c < kBlockN / 8; ++c)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float& x = s[4 * c + 2 * half + e];
            x = fast_exp2(fmaf(x, p.scale_log2, -base_val));
            sum += x;
          }
        row_sum[half] = row_sum[half] * corr[half] + sum;
      }
    };
    const auto pack = [&] {
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk)
#pragma unroll
        for (int r = 0; r < 4; ++r) pa[kk][r] = pack2<T>(s[8 * kk + 2 * r], s[8 * kk + 2 * r + 1]);
    };

    mbar_wait(q_bar, 0);
    // Group 0 takes the first turn; each later turn issues the next tile's Q K^T and this tile's P V.
    if (group == 1) turn_pass(group);
    turn_wait(group);
    mbar_wait(full_bar, 0);
    pin(s);
    wgmma_fence();
    issue_qk(0);
    wgmma_commit();
    turn_pass(group);
    wgmma_wait<0>();
    pin(s);
    softmax(0);
    pack();
    for (int j = 0; j + 1 < n_tiles; ++j) {
      const int st = j % kStages, nst = (j + 1) % kStages;
      mbar_wait(full_bar + 8 * nst, ((j + 1) / kStages) & 1);
      turn_wait(group);
#pragma unroll
      for (int i = 0; i < D / 2; ++i) o[i] *= corr[(i >> 1) & 1];
      pin(o);
      pin(s);
      wgmma_fence();
      // The next tile's scores first, in their own group: its softmax then runs while P V still does.
      issue_qk(nst);
      wgmma_commit();
      issue_pv(st);
      wgmma_commit();
      turn_pass(group);
      wgmma_wait<1>();
      pin(s);
      softmax(j + 1);
      wgmma_wait<0>();
      pin(o);
      if (lane == 0) mbar_arrive(empty_bar + 8 * st);
      pack();
    }
    turn_wait(group);
#pragma unroll
    for (int i = 0; i < D / 2; ++i) o[i] *= corr[(i >> 1) & 1];
    pin(o);
    wgmma_fence();
    issue_pv((n_tiles - 1) % kStages);
    wgmma_commit();
    // Group 1's last pass would have no turn to answer it.
    if (group == 0) turn_pass(group);
    wgmma_wait<0>();
    pin(o);
  }

  T* out = static_cast<T*>(p.out) + b * p.o_stride[0] + h * p.o_stride[1];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const float sum = quad_sum(row_sum[half]);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int row = row0 + 8 * half;
    if (row >= p.sq) continue;
    T* orow = out + static_cast<int64_t>(row) * p.o_stride[2];
#pragma unroll
    for (int c = 0; c < D / 8; ++c)
      *reinterpret_cast<uint32_t*>(orow + 8 * c + 2 * t) =
          pack2<T>(o[4 * c + 2 * half] * inv, o[4 * c + 2 * half + 1] * inv);
  }
#endif  // MTL_FLASH_SM90_DEVICE
}

template <class T, int D>
void launch_typed(const Params& p, const CUtensorMap& q_map, const CUtensorMap& k_map,
                  const CUtensorMap& v_map, cudaStream_t stream) {
  const auto kernel = flash_sm90_kernel<T, D>;
  constexpr int smem = Smem<D>::kAlloc;
  MTL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const dim3 grid((p.sq + kBlockM - 1) / kBlockM, p.hq, p.batch);
  kernel<<<grid, kThreads, smem, stream>>>(q_map, k_map, v_map, p);
  MTL_CUDA_CHECK_LAUNCH("sdpa flash sm90 kernel");
}

}  // namespace

bool launch_flash_sm90(const Params& p, Kind kind, cudaStream_t stream) {
  if (p.mask || p.out_f32 || (p.d != 64 && p.d != 128) || !(p.scale_log2 > 0.0f)) return false;
  if (compute_capability() != 90) return false;  // sm_90a code runs on compute capability 9.0 only
  CUtensorMap q_map, k_map, v_map;
  const bool bf16 = kind == Kind::BF16;
  if (!make_head_map(q_map, bf16, p.q, p.batch, p.hq, p.sq, p.d, p.q_stride, kGroupRows) ||
      !make_head_map(k_map, bf16, p.k, p.batch, p.hkv, p.sk, p.d, p.k_stride, kTmaRows) ||
      !make_head_map(v_map, bf16, p.v, p.batch, p.hkv, p.sk, p.d, p.v_stride, kTmaRows))
    return false;
  if (kind == Kind::BF16)
    p.d == 64 ? launch_typed<__nv_bfloat16, 64>(p, q_map, k_map, v_map, stream)
              : launch_typed<__nv_bfloat16, 128>(p, q_map, k_map, v_map, stream);
  else
    p.d == 64 ? launch_typed<__half, 64>(p, q_map, k_map, v_map, stream)
              : launch_typed<__half, 128>(p, q_map, k_map, v_map, stream);
  return true;
}

}  // namespace metallic::cuda::attn
