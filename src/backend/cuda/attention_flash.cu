// Fused prefill attention on tensor cores (mma.sync m16n8k16): each CTA owns 64 query rows (16 per
// warp), streams 64-key tiles of K and V through double-buffered shared memory with cp.async, and keeps
// the running max, sum and output in registers, so the score matrix never reaches device memory. On
// compute capability 9.0 launch_flash first offers the call to the wgmma kernel (attention_flash_sm90.cu).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <climits>
#include <type_traits>

#include "backend/cuda/attention_impl.cuh"
#include "backend/cuda/check.h"
#include "backend/cuda/cluster.cuh"
#include "backend/cuda/counters.h"
#include "backend/cuda/launch.h"
#include "backend/cuda/mbarrier.cuh"
#include "backend/cuda/pdl.cuh"
#include "backend/cuda/rows.cuh"
#include "backend/cuda/tensor_map.h"

namespace metallic::cuda::attn {
namespace {

constexpr int kBlockN = 64;  // keys per tile
constexpr int kThreads = 128;

// 16-byte global -> shared copy; src_bytes 0 fills the destination with zeros (rows past the end).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

template <class T>
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Tiles are [rows][D] with the 16-byte chunks of each row XOR-swizzled by the row's low three bits,
// so that the eight rows one ldmatrix phase reads fall in distinct banks.
template <int D>
__device__ __forceinline__ int swizzle(int row, int col) {
  return row * D + ((((col >> 3) ^ (row & 7))) << 3) + (col & 7);
}

// Element (row, col) of a tile of ROWS rows stored as 64-column blocks of ROWS x 64, each row's 16-byte
// chunks XOR-swizzled by the row's low three bits (the 128-byte swizzle; blocks start 1024-byte aligned).
template <int ROWS>
__device__ __forceinline__ int blocked_swizzle(int row, int col) {
  return (col / kTmaCols) * ROWS * kTmaCols + row * kTmaCols + ((((col % kTmaCols) >> 3) ^ (row & 7)) << 3) +
         (col & 7);
}

// Copies tiles of ROWS rows of a [len, D] matrix (row stride `stride` elements) into shared memory, the
// rows' 16-byte chunks XOR-swizzled: across the whole row (swizzle()) or, with Blocked, within 64-column
// blocks stored one after the other (blocked_swizzle(), the layout a 128-byte-swizzled tensor map writes).
// Either keeps an ldmatrix phase's eight rows in distinct banks. Thread t always copies chunk t % (D / 8) of
// rows t / (D / 8) + i * kRowStep; that step is a multiple of 8, so each of its chunks lands at a fixed
// offset from the tile's start, worked out once with the thread's source address and the step between its
// chunks. A tile inside the matrix (all but the last) then costs one 64-bit add per chunk; only the last one
// checks its rows.
template <class T, int D, int ROWS, int THREADS = kThreads, bool Blocked = false>
struct TileLoader {
  static constexpr int kChunks = D / 8, kRowStep = THREADS / kChunks, kLd = Blocked ? kTmaCols : D;
  static_assert(kRowStep % 8 == 0 && ROWS % kRowStep == 0, "every thread copies chunks of the same swizzle");
  const T* first;  // this thread's chunk of row 0
  int64_t stride;
  int64_t step;     // elements between this thread's consecutive chunks of a tile
  int row, offset;  // this thread's first row of a tile, and where its chunk of that row lands

  __device__ __forceinline__ TileLoader(const T* src, int64_t row_stride)
      : stride(row_stride), step(row_stride * kRowStep) {
    row = static_cast<int>(threadIdx.x) / kChunks;
    const int c = static_cast<int>(threadIdx.x) % kChunks;
    first = src + row * row_stride + c * 8;
    offset = Blocked ? blocked_swizzle<ROWS>(row, c * 8) : swizzle<D>(row, c * 8);
  }

  // Rows [row0, row0 + ROWS) into `tile`; rows at or past `len` are filled with zeros.
  __device__ __forceinline__ void load(T* tile, int row0, int len) const {
    const T* g = first + static_cast<int64_t>(row0) * stride;
    if (row0 + ROWS <= len) {
#pragma unroll
      for (int i = 0; i < ROWS / kRowStep; ++i, g += step) cp_async16(tile + offset + i * kRowStep * kLd, g);
      return;
    }
#pragma unroll
    for (int i = 0; i < ROWS / kRowStep; ++i, g += step) {
      const bool inside = row0 + row + i * kRowStep < len;
      cp_async16(tile + offset + i * kRowStep * kLd, inside ? g : first, inside ? 16 : 0);
    }
  }
};

// kWarps warps of 16 query rows each share every K/V tile, which streams through a kStages-deep cp.async
// ring: a taller CTA reads K and V from L2 fewer times per query row.
template <class T, int D, bool kMask, int kWarps, int kStages>
__global__ void __launch_bounds__(32 * kWarps) flash_kernel(Params p) {
  constexpr int kRows = 16 * kWarps, kThr = 32 * kWarps;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sq_tile = reinterpret_cast<T*>(smem_raw);
  T* ring = sq_tile + kRows * D;  // [stage][K, V][kBlockN * D]

  const int warp = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  const int g = lane >> 2, t = lane & 3;
  // Heaviest causal blocks first, so the short ones fill the tail of the grid.
  const int m_block = static_cast<int>(gridDim.x - 1 - blockIdx.x);
  const int h = static_cast<int>(blockIdx.y), b = static_cast<int>(blockIdx.z);
  const int kvh = h / p.group;
  const int m0 = m_block * kRows;
  const int sk = keys_of(p, b);

  const T* q = static_cast<const T*>(p.q) + b * p.q_stride[0] + h * p.q_stride[1];
  const T* k = static_cast<const T*>(p.k) + b * p.k_stride[0] + kvh * p.k_stride[1];
  const T* v = static_cast<const T*>(p.v) + b * p.v_stride[0] + kvh * p.v_stride[1];

  // Keys this block can see at all.
  int64_t key_end = sk;
  if (p.causal) {
    const int64_t visible = m0 + kRows + p.query_offset;
    key_end = visible < 0 ? 0 : (visible < key_end ? visible : key_end);
  }
  const int n_tiles = static_cast<int>((key_end + kBlockN - 1) / kBlockN);

  TileLoader<T, D, kRows, kThr>(q, p.q_stride[2]).load(sq_tile, m0, p.sq);  // joins the first stage's group
  const TileLoader<T, D, kBlockN, kThr> k_tiles(k, p.k_stride[2]), v_tiles(v, p.v_stride[2]);
  const auto load_stage = [&](int tile) {
    if (tile < n_tiles) {
      T* ks = ring + (tile % kStages) * 2 * kBlockN * D;
      k_tiles.load(ks, tile * kBlockN, sk);
      v_tiles.load(ks + kBlockN * D, tile * kBlockN, sk);
    }
    cp_async_commit();  // empty groups keep the wait count uniform
  };
#pragma unroll
  for (int st = 0; st < kStages - 1; ++st) load_stage(st);

  uint32_t qa[D / 16][4];
  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};
  const int row_lo = m0 + warp * 16 + g;  // this thread's rows: row_lo and row_lo + 8
  const int64_t warp_last_key = static_cast<int64_t>(m0) + warp * 16 + 15 + p.query_offset;

  for (int tile = 0; tile < n_tiles; ++tile) {
    cp_async_wait<kStages - 2>();
    __syncthreads();
    load_stage(tile + kStages - 1);  // into the stage every warp finished reading last iteration
    if (tile == 0) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
        ldmatrix_x4(qa[kk], sq_tile + swizzle<D>(warp * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8));
    }
    const int n0 = tile * kBlockN;
    // Causal tiles wholly past this warp's last row add nothing to it.
    if (p.causal && n0 > warp_last_key) continue;
    const T* ks = ring + (tile % kStages) * 2 * kBlockN * D;
    const T* vs = ks + kBlockN * D;

    float s[kBlockN / 8][4];
#pragma unroll
    for (int i = 0; i < kBlockN / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < kBlockN / 16; ++np) {
        uint32_t kb[4];
        ldmatrix_x4(
            kb, ks + swizzle<D>(np * 16 + (lane & 7) + ((lane >> 4) << 3), kk * 16 + ((lane >> 3) & 1) * 8));
        mma<T>(s[2 * np], qa[kk], kb[0], kb[1]);
        mma<T>(s[2 * np + 1], qa[kk], kb[2], kb[3]);
      }
    }

    // Only tiles that cross the end of the keys or the diagonal need per-element masking.
    const bool edge = n0 + kBlockN > sk || (p.causal && n0 + kBlockN - 1 > m0 + warp * 16 + p.query_offset);
#pragma unroll
    for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[nt][e] * p.scale_log2;
        const int row = row_lo + (e >> 1) * 8;
        const int col = n0 + nt * 8 + 2 * t + (e & 1);
        if (kMask && row < p.sq && col < sk)
          x += kLog2e *
               p.mask[b * p.m_stride[0] + h * p.m_stride[1] + row * p.m_stride[2] + col * p.m_stride[3]];
        if (edge && (col >= sk || (p.causal && col > row + p.query_offset))) x = -INFINITY;
        s[nt][e] = x;
      }
    }

    float corr[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float mx = row_max[half];
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * half], s[nt][2 * half + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      // With nothing seen yet the max is -inf; subtracting 0 instead keeps exp2 at 0 rather than NaN.
      const float base = mx == -INFINITY ? 0.0f : mx;
      corr[half] = fast_exp2(row_max[half] - base);
      row_max[half] = mx;
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt) {
        s[nt][2 * half] = fast_exp2(s[nt][2 * half] - base);
        s[nt][2 * half + 1] = fast_exp2(s[nt][2 * half + 1] - base);
        sum += s[nt][2 * half] + s[nt][2 * half + 1];
      }
      row_sum[half] = row_sum[half] * corr[half] + sum;
    }
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      o[dt][0] *= corr[0];
      o[dt][1] *= corr[0];
      o[dt][2] *= corr[1];
      o[dt][3] *= corr[1];
    }

#pragma unroll
    for (int kb = 0; kb < kBlockN / 16; ++kb) {
      const uint32_t pa[4] = {pack2<T>(s[2 * kb][0], s[2 * kb][1]), pack2<T>(s[2 * kb][2], s[2 * kb][3]),
                              pack2<T>(s[2 * kb + 1][0], s[2 * kb + 1][1]),
                              pack2<T>(s[2 * kb + 1][2], s[2 * kb + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t vb[4];
        ldmatrix_x4_trans(
            vb, vs + swizzle<D>(kb * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, dp * 16 + (lane >> 4) * 8));
        mma<T>(o[2 * dp], pa, vb[0], vb[1]);
        mma<T>(o[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }
  }
  cp_async_wait<0>();

  T* out = static_cast<T*>(p.out) + b * p.o_stride[0] + h * p.o_stride[1];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const float sum = quad_sum(row_sum[half]);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int row = row_lo + half * 8;
    if (row >= p.sq) continue;
    T* orow = out + row * p.o_stride[2];
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt)
      *reinterpret_cast<uint32_t*>(orow + dt * 8 + 2 * t) =
          pack2<T>(o[dt][2 * half] * inv, o[dt][2 * half + 1] * inv);
  }
}

// Split-K decode on tensor cores: the up to 16 query rows that share one kv head (q heads of the group
// times Sq queries) form one m16 tile, so every K and V byte of the chunk is read once for all of them.
// The four warps take 16-key slices of each 64-key tile from a three-stage cp.async ring, keep their
// own running max, sum and output, and merge them through shared memory at the end.
constexpr int kDecodeRows = 16;

// Element `offset` of the output, in q's type or f32.
template <class T>
__device__ __forceinline__ void store_out(const Params& p, int64_t offset, float val) {
  if (p.out_f32)
    static_cast<float*>(p.out)[offset] = val;
  else if constexpr (std::is_same_v<T, __nv_bfloat16>)
    static_cast<T*>(p.out)[offset] = __float2bfloat16(val);
  else
    static_cast<T*>(p.out)[offset] = __float2half(val);
}

// Query head and query position of row `row` of a KV head's rows (its group's heads, Sq queries each).
// Decode has one query, which spares the integer division.
__device__ __forceinline__ int2 row_query(const Params& p, int kvh, int row) {
  if (p.sq == 1) return make_int2(kvh * p.group + row, 0);
  return make_int2(kvh * p.group + row / p.sq, row % p.sq);
}

// Element offset of query `q` (head, position) of batch b in the output.
__device__ __forceinline__ int64_t out_offset(const Params& p, int b, int2 q) {
  return b * p.o_stride[0] + q.x * p.o_stride[1] + q.y * p.o_stride[2];
}

// The first of query q's `n_chunks` slots of partials in device memory.
__device__ __forceinline__ int64_t partial_slot(const Params& p, int b, int2 q, int n_chunks) {
  return ((static_cast<int64_t>(b) * p.hq + q.x) * p.sq + q.y) * n_chunks;
}

// Four consecutive output elements from `offset` on.
template <class T>
__device__ __forceinline__ void store_out4(const Params& p, int64_t offset, float4 v) {
  store_out<T>(p, offset, v.x);
  store_out<T>(p, offset + 1, v.y);
  store_out<T>(p, offset + 2, v.z);
  store_out<T>(p, offset + 3, v.w);
}

// `used` of N flash partials (row maxima m and sums l in the exp2 domain, four output columns v each)
// merged: the common maximum, the sum and the four columns, each partial weighted by exp2(m - max).
struct Merged {
  float mx, total;
  float4 acc;
};
template <int N>
__device__ __forceinline__ Merged merge_partials(const float (&m)[N], const float (&l)[N],
                                                 const float4 (&v)[N], int used) {
  Merged r{-INFINITY, 0.0f, make_float4(0.f, 0.f, 0.f, 0.f)};
#pragma unroll
  for (int c = 0; c < N; ++c)
    if (c < used) r.mx = fmaxf(r.mx, m[c]);
  if (r.mx == -INFINITY) return r;
#pragma unroll
  for (int c = 0; c < N; ++c) {
    if (c < used) {
      const float wt = fast_exp2(m[c] - r.mx);
      r.total += wt * l[c];
      r.acc.x += wt * v[c].x, r.acc.y += wt * v[c].y, r.acc.z += wt * v[c].z, r.acc.w += wt * v[c].w;
    }
  }
  return r;
}

// The merged columns divided by the sum (zeros for a row that saw no key).
__device__ __forceinline__ float4 normalized(const Merged& r) {
  const float inv = r.total > 0.0f ? 1.0f / r.total : 0.0f;
  return make_float4(r.acc.x * inv, r.acc.y * inv, r.acc.z * inv, r.acc.w * inv);
}

constexpr int kDecodeStages = 3;
// The most chunks one cluster merges (non-portable cluster sizes go to 16 on compute capability 9.0).
constexpr int kDecodeClusterMax = 16;
// Floats per row where the warps' outputs meet: 8 past D, so that a half-warp's 8-byte stores of rows g
// (0..3) and columns 2t hit 32 different banks (with D they all hit the same 8, 8-way conflicts).
template <int D>
constexpr int kMergeStride = D + 8;

// K and V tiles are stored as 128-byte-swizzled 64-column blocks (blocked_swizzle), the layout the tensor-
// memory accelerator writes: on compute capability 9.0 one thread moves a stage with one copy per block
// (split.tma), completing on the stage's mbarrier. (cp.async moves 16 bytes per thread and instruction, 128
// per thread and tile, and the load/store unit's queue rather than DRAM then set the pace: 0.79 of copy
// bandwidth at 4096 keys.) The ring starts 1024-byte aligned, as the swizzle's pattern requires.
template <class T, int D>
constexpr int decode_ring_bytes() {
  return kDecodeStages * 2 * kBlockN * D * static_cast<int>(sizeof(T));
}

template <class T, int D>
constexpr int decode_smem_bytes() {
  return 1024 + kDecodeRows * D * static_cast<int>(sizeof(T)) + decode_ring_bytes<T, D>();
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define MTL_DECODE_TMA 1
#endif

// k_map and v_map describe K and V when split.tma (boxes of 64 rows by 64 columns).
template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    flash_decode_kernel(Params p, DecodeSplit split, const __grid_constant__ CUtensorMap k_map,
                        const __grid_constant__ CUtensorMap v_map) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
#ifdef MTL_DECODE_TMA
  __shared__ __align__(8) uint64_t full[kDecodeStages];  // per stage: its K and V tiles have landed
#endif
  wait_for_producer();
  allow_dependents();
  // [stage][K, V][64-column block][kBlockN][64], then the query tile.
  // (Offsetting smem_raw itself, rather than rounding its address as an integer, keeps the pointers
  // derived from it in the shared space, so their loads and stores compile to LDS / STS.)
  T* ring = reinterpret_cast<T*>(smem_raw + (1024u - smem_addr(smem_raw) % 1024u) % 1024u);
  T* sq_tile = ring + kDecodeStages * 2 * kBlockN * D;

  const int warp = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  const int g = lane >> 2, t = lane & 3;
  const int chunk = static_cast<int>(blockIdx.x), n_chunks = static_cast<int>(gridDim.x);
  const int kvh = static_cast<int>(blockIdx.y) / split.row_groups;
  const int r0 = (static_cast<int>(blockIdx.y) % split.row_groups) * kDecodeRows;
  const int b = static_cast<int>(blockIdx.z);
  const int rows = min(kDecodeRows, p.group * p.sq - r0);

  const T* k = static_cast<const T*>(p.k) + b * p.k_stride[0] + kvh * p.k_stride[1];
  const T* v = static_cast<const T*>(p.v) + b * p.v_stride[0] + kvh * p.v_stride[1];
  const int64_t keys = p.key_lengths ? min(split.keys, static_cast<int64_t>(keys_of(p, b))) : split.keys;
  // Chunks past the keys in use (a cache filled only in part) have nothing to add: they leave at once, and
  // the others count and merge only the chunks in use.
  const int64_t filled = (keys + split.chunk_len - 1) / split.chunk_len;
  const int used = filled < 1 ? 1 : filled < n_chunks ? static_cast<int>(filled) : n_chunks;
  if (chunk >= used) {
#ifdef MTL_DECODE_TMA
    if (split.cluster) {  // the cluster's two barriers count every CTA
      cluster_sync();
      cluster_sync();
    }
#endif
    return;
  }
  const int64_t k0 = chunk * split.chunk_len, k1 = keys < k0 + split.chunk_len ? keys : k0 + split.chunk_len;
  const int n_tiles = static_cast<int>((k1 - k0 + kBlockN - 1) / kBlockN);

  // Tiles count from the chunk's first key.
  const int len = static_cast<int>(k1 - k0);
  const TileLoader<T, D, kBlockN, kThreads, true> k_tiles(k + k0 * p.k_stride[2], p.k_stride[2]),
      v_tiles(v + k0 * p.v_stride[2], p.v_stride[2]);
#ifdef MTL_DECODE_TMA
  if (split.tma) {
    if (threadIdx.x == 0)
      for (int st = 0; st < kDecodeStages; ++st) mbar_init(smem_addr(&full[st]), 1);
    __syncthreads();
  }
#endif
  const auto load_stage = [&](int tile) {
    T* ks = ring + (tile % kDecodeStages) * 2 * kBlockN * D;
#ifdef MTL_DECODE_TMA
    if (split.tma) {
      if (tile < n_tiles && threadIdx.x == 0) {
        const uint32_t bar = smem_addr(&full[tile % kDecodeStages]);
        const int row = static_cast<int>(k0) + tile * kBlockN;
        fence_proxy_async();
        mbar_expect_tx(bar, 2 * kBlockN * D * static_cast<int>(sizeof(T)));
#pragma unroll
        for (int c = 0; c < D / kTmaCols; ++c) {
          tma_load(smem_addr(ks + c * kBlockN * kTmaCols), &k_map, c * kTmaCols, row, kvh, b, bar);
          tma_load(smem_addr(ks + (D / kTmaCols + c) * kBlockN * kTmaCols), &v_map, c * kTmaCols, row, kvh, b,
                   bar);
        }
      }
      return;
    }
#endif
    if (tile < n_tiles) {
      k_tiles.load(ks, tile * kBlockN, len);
      v_tiles.load(ks + kBlockN * D, tile * kBlockN, len);
    }
    cp_async_commit();  // empty groups keep the wait count uniform
  };
#pragma unroll
  for (int st = 0; st < kDecodeStages - 1; ++st) load_stage(st);
  // Query rows (while the first tiles are on their way): row r of the tile is query (r0 + r) % Sq of q head
  // kvh * group + (r0 + r) / Sq.
  for (int idx = static_cast<int>(threadIdx.x); idx < kDecodeRows * D / 8; idx += kThreads) {
    const int r = idx / (D / 8), c = idx % (D / 8);
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < rows) {
      const int2 qr = row_query(p, kvh, r0 + r);
      val = *reinterpret_cast<const uint4*>(static_cast<const T*>(p.q) + b * p.q_stride[0] +
                                            qr.x * p.q_stride[1] + qr.y * p.q_stride[2] + c * 8);
    }
    *reinterpret_cast<uint4*>(sq_tile + swizzle<D>(r, c * 8)) = val;
  }
  __syncthreads();
  uint32_t qa[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    ldmatrix_x4(qa[kk], sq_tile + swizzle<D>(lane & 15, kk * 16 + (lane >> 4) * 8));

  // This thread's two rows (g and g + 8): their query position and head, or -1 past the last row.
  int row_q[2], row_h[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = g + 8 * half;
    const int2 qr = row_query(p, kvh, r0 + r);
    row_q[half] = r < rows ? qr.y : -1;
    row_h[half] = qr.x;
  }
  // The lowest query position among this thread's rows (padding rows see every key).
  const int q_lo = min(row_q[0] < 0 ? INT_MAX / 2 : row_q[0], row_q[1] < 0 ? INT_MAX / 2 : row_q[1]);
  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};

  for (int tile = 0; tile < n_tiles; ++tile) {
    T* ks = ring + (tile % kDecodeStages) * 2 * kBlockN * D;
    T* vs = ks + kBlockN * D;
#ifdef MTL_DECODE_TMA
    if (split.tma) {
      mbar_wait(smem_addr(&full[tile % kDecodeStages]), (tile / kDecodeStages) & 1);
      // Rows past the chunk's keys hold whatever the cache holds there: their scores are masked, but a
      // probability of 0 times a NaN left in V would still be NaN, so those V rows become zeros.
      if ((tile + 1) * kBlockN > len) {  // the last tile of a chunk cut short
        const int c = static_cast<int>(threadIdx.x) % (D / 8);
        for (int r = static_cast<int>(threadIdx.x) / (D / 8); r < kBlockN; r += kThreads / (D / 8))
          if (tile * kBlockN + r >= len)
            *reinterpret_cast<uint4*>(vs + blocked_swizzle<kBlockN>(r, c * 8)) = uint4{};
      }
    } else {
      cp_async_wait<kDecodeStages - 2>();
    }
#else
    cp_async_wait<kDecodeStages - 2>();
#endif
    __syncthreads();
    load_stage(tile + kDecodeStages - 1);  // into the stage every warp finished reading last iteration
    const int n0 = warp * 16;              // this warp's slice of the tile

    float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t kb[4];
      ldmatrix_x4(kb, ks + blocked_swizzle<kBlockN>(n0 + (lane & 7) + ((lane >> 4) << 3),
                                                    kk * 16 + ((lane >> 3) & 1) * 8));
      mma<T>(s[0], qa[kk], kb[0], kb[1]);
      mma<T>(s[1], qa[kk], kb[2], kb[3]);
    }
    const int64_t key0 = k0 + static_cast<int64_t>(tile) * kBlockN + n0;
    // A slice of keys that no row has to mask (the usual case) only scales its scores.
    const bool plain = !p.mask && key0 + 16 <= k1 && (!p.causal || key0 + 15 <= q_lo + p.query_offset);
    if (plain) {
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nt][e] *= p.scale_log2;
    } else
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int half = e >> 1;
          const int64_t j = key0 + nt * 8 + 2 * t + (e & 1);
          float x = s[nt][e] * p.scale_log2;
          if (p.mask && row_q[half] >= 0 && j < k1)
            x += kLog2e * p.mask[b * p.m_stride[0] + row_h[half] * p.m_stride[1] +
                                 row_q[half] * p.m_stride[2] + j * p.m_stride[3]];
          if (j >= k1 || row_q[half] < 0 || (p.causal && j > row_q[half] + p.query_offset)) x = -INFINITY;
          s[nt][e] = x;
        }
      }
    float corr[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float mx = fmaxf(row_max[half], fmaxf(fmaxf(s[0][2 * half], s[0][2 * half + 1]),
                                            fmaxf(s[1][2 * half], s[1][2 * half + 1])));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float base = mx == -INFINITY ? 0.0f : mx;
      corr[half] = fast_exp2(row_max[half] - base);
      row_max[half] = mx;
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        s[nt][2 * half] = fast_exp2(s[nt][2 * half] - base);
        s[nt][2 * half + 1] = fast_exp2(s[nt][2 * half + 1] - base);
        sum += s[nt][2 * half] + s[nt][2 * half + 1];
      }
      row_sum[half] = row_sum[half] * corr[half] + sum;
    }
    const uint32_t pa[4] = {pack2<T>(s[0][0], s[0][1]), pack2<T>(s[0][2], s[0][3]),
                            pack2<T>(s[1][0], s[1][1]), pack2<T>(s[1][2], s[1][3])};
    // Once the running maxima settle, most tiles leave them unchanged and need no rescale of the outputs.
    if (__any_sync(0xffffffffu, corr[0] != 1.0f || corr[1] != 1.0f)) {
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        o[2 * dp][0] *= corr[0];
        o[2 * dp][1] *= corr[0];
        o[2 * dp][2] *= corr[1];
        o[2 * dp][3] *= corr[1];
        o[2 * dp + 1][0] *= corr[0];
        o[2 * dp + 1][1] *= corr[0];
        o[2 * dp + 1][2] *= corr[1];
        o[2 * dp + 1][3] *= corr[1];
      }
    }
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      uint32_t vb[4];
      ldmatrix_x4_trans(vb, vs + blocked_swizzle<kBlockN>(n0 + (lane & 7) + ((lane >> 3) & 1) * 8,
                                                          dp * 16 + (lane >> 4) * 8));
      mma<T>(o[2 * dp], pa, vb[0], vb[1]);
      mma<T>(o[2 * dp + 1], pa, vb[2], vb[3]);
    }
  }
  cp_async_wait<0>();  // (no groups in flight with split.tma: every tile's barrier was waited on)
  __syncthreads();     // the ring is reused below for the merge

  float* s_m = reinterpret_cast<float*>(ring);  // [warp][row]
  float* s_l = s_m + 4 * kDecodeRows;           // [warp][row]
  float* s_o = s_l + 4 * kDecodeRows;           // [warp][row][kMergeStride]
  // This chunk's partials where the other chunks of a cluster read them.
  float* c_acc = s_o + 4 * kDecodeRows * kMergeStride<D>;  // [row][D]
  float* c_ml = c_acc + kDecodeRows * D;                   // [row][max, sum]
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const float sum = quad_sum(row_sum[half]);
    const int r = g + 8 * half;
    if (t == 0) {
      s_m[warp * kDecodeRows + r] = row_max[half];
      s_l[warp * kDecodeRows + r] = sum;
    }
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt)
      *reinterpret_cast<float2*>(s_o + (warp * kDecodeRows + r) * kMergeStride<D> + dt * 8 + 2 * t) =
          make_float2(o[dt][2 * half], o[dt][2 * half + 1]);
  }
  __syncthreads();
  // Each thread merges four columns of a row: the four warps' maxima, sums and outputs, all loads at once.
  for (int idx = static_cast<int>(threadIdx.x); idx < rows * D / 4; idx += kThreads) {
    const int r = idx / (D / 4), d = idx % (D / 4) * 4;
    float m[4], l[4];
    float4 v[4];
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      m[w] = s_m[w * kDecodeRows + r];
      l[w] = s_l[w * kDecodeRows + r];
      v[w] = *reinterpret_cast<const float4*>(s_o + (w * kDecodeRows + r) * kMergeStride<D> + d);
    }
    const Merged mg = merge_partials(m, l, v, 4);
    const int2 qr = row_query(p, kvh, r0 + r);
    if (used == 1) {
      store_out4<T>(p, out_offset(p, b, qr) + d, normalized(mg));
    } else if (split.cluster) {
      *reinterpret_cast<float4*>(c_acc + r * D + d) = mg.acc;
      if (d == 0) c_ml[2 * r] = mg.mx, c_ml[2 * r + 1] = mg.total;
    } else {
      const int64_t slot = partial_slot(p, b, qr, n_chunks) + chunk;
      *reinterpret_cast<float4*>(split.part_acc + slot * D + d) = mg.acc;
      if (d == 0) split.part_ml[2 * slot] = mg.mx, split.part_ml[2 * slot + 1] = mg.total;
    }
  }
#ifdef MTL_DECODE_TMA
  if (split.cluster) {
    // Every chunk's partials are in its shared memory after the first barrier; the chunks in use (those
    // past the keys have left) share the outputs, four columns per thread, each reading every chunk's
    // maxima, sums and columns at once; the second barrier keeps every chunk's shared memory in place
    // until the last read.
    cluster_sync();
    if (used > 1) {
      for (int idx = chunk * kThreads + static_cast<int>(threadIdx.x); idx < rows * D / 4;
           idx += used * kThreads) {
        const int r = idx / (D / 4), d = idx % (D / 4) * 4;
        float m[kDecodeClusterMax], l[kDecodeClusterMax];
        float4 v[kDecodeClusterMax];
#pragma unroll
        for (int c = 0; c < kDecodeClusterMax; ++c) {
          if (c < used) {
            m[c] = ld_cluster(c_ml + 2 * r, c);
            l[c] = ld_cluster(c_ml + 2 * r + 1, c);
            v[c] = ld_cluster4(c_acc + r * D + d, c);
          }
        }
        store_out4<T>(p, out_offset(p, b, row_query(p, kvh, r0 + r)) + d,
                      normalized(merge_partials(m, l, v, used)));
      }
    }
    cluster_sync();
    return;
  }
#endif
  if (used == 1) return;

  // The last chunk of this tile to finish merges the partials, which saves a second launch; it also puts
  // the counter back to zero for the next call. Every load of a merge step is issued at once: a chunk's
  // partials sit in L2, and a loop over chunks would wait on one round trip per chunk.
  if (!last_block_to_finish(split.counters + static_cast<int64_t>(blockIdx.z) * gridDim.y + blockIdx.y, used))
    return;
  const auto slot_of = [&](int r) { return partial_slot(p, b, row_query(p, kvh, r0 + r), n_chunks); };
  // Each chunk's max and sum, then per row the weight exp2(m_c - max) / total of every chunk.
  float* s_w = reinterpret_cast<float*>(ring);  // [chunk][row]
  float* s_sum = s_w + used * kDecodeRows;      // [chunk][row]
  for (int idx = static_cast<int>(threadIdx.x); idx < rows * used; idx += kThreads) {
    const int r = idx % rows, c = idx / rows;
    const float2 ml = __ldcg(reinterpret_cast<const float2*>(split.part_ml) + slot_of(r) + c);
    s_w[c * kDecodeRows + r] = ml.x;
    s_sum[c * kDecodeRows + r] = ml.y;
  }
  __syncthreads();
  if (threadIdx.x < rows) {
    const int r = static_cast<int>(threadIdx.x);
    float mx = -INFINITY, total = 0.0f;
    for (int c = 0; c < used; ++c) mx = fmaxf(mx, s_w[c * kDecodeRows + r]);
    for (int c = 0; c < used; ++c) {
      const float wt = mx == -INFINITY ? 0.0f : fast_exp2(s_w[c * kDecodeRows + r] - mx);
      s_w[c * kDecodeRows + r] = wt;
      total += wt * s_sum[c * kDecodeRows + r];
    }
    s_sum[r] = total > 0.0f ? 1.0f / total : 0.0f;  // row r's chunk-0 sum is no longer needed
  }
  __syncthreads();
  constexpr int kUnroll = 8;
  for (int idx = static_cast<int>(threadIdx.x); idx < rows * D / 4; idx += kThreads) {
    const int r = idx / (D / 4), d = idx % (D / 4) * 4;
    const float4* part = reinterpret_cast<const float4*>(split.part_acc + slot_of(r) * D + d);
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int c0 = 0; c0 < used; c0 += kUnroll) {
      float4 v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
        v[u] = c0 + u < used ? __ldcg(part + static_cast<int64_t>(c0 + u) * (D / 4))
                             : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const float wt = c0 + u < used ? s_w[(c0 + u) * kDecodeRows + r] : 0.0f;
        acc.x += wt * v[u].x, acc.y += wt * v[u].y, acc.z += wt * v[u].z, acc.w += wt * v[u].w;
      }
    }
    const float inv = s_sum[r];
    store_out4<T>(p, out_offset(p, b, row_query(p, kvh, r0 + r)) + d,
                  make_float4(acc.x * inv, acc.y * inv, acc.z * inv, acc.w * inv));
  }
}

template <class T, int D>
void set_decode_smem() {
  MTL_CUDA_CHECK(cudaFuncSetAttribute(flash_decode_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      decode_smem_bytes<T, D>()));
}

template <class T, int D>
void launch_decode_typed(const Params& p, DecodeSplit split, cudaStream_t stream) {
  constexpr int smem = decode_smem_bytes<T, D>();
  CUtensorMap k_map{}, v_map{};
  constexpr bool bf16 = std::is_same_v<T, __nv_bfloat16>;
  // The tensor-memory accelerator arrived with compute capability 9.0.
  split.tma = compute_capability() >= 90 &&
              make_head_map(k_map, bf16, p.k, p.batch, p.hkv, p.sk, D, p.k_stride, kBlockN) &&
              make_head_map(v_map, bf16, p.v, p.batch, p.hkv, p.sk, D, p.v_stride, kBlockN);
  static_assert(decode_ring_bytes<T, D>() >=
                    sizeof(float) * (4 * kDecodeRows * (kMergeStride<D> + 2) + kDecodeRows * (D + 2)),
                "the merge of the warps and the cluster's partials reuse the ring");
  static_assert(decode_ring_bytes<T, D>() >= sizeof(float) * 2 * kDecodeMaxChunks * kDecodeRows,
                "the merge of the chunks reuses the ring");
  set_decode_smem<T, D>();
  const dim3 grid(static_cast<unsigned>(split.n_chunks), static_cast<unsigned>(p.hkv * split.row_groups),
                  static_cast<unsigned>(p.batch));
  launch_dependent_clustered(split.cluster ? grid.x : 1, flash_decode_kernel<T, D>, grid, kThreads, smem,
                             stream, p, split, k_map, v_map);
  MTL_CUDA_CHECK_LAUNCH("sdpa decode kernel");
}

// Clusters need compute capability 9.0, in the device and in the code the kernel was built as (a build for
// older GPUs alone runs on a newer one without the cluster merge); how many CTAs one may hold depends on
// the kernel's shared memory and the GPU's processor clusters, so the runtime is asked.
template <class T, int D>
int decode_cluster_limit_typed() {
  const auto kernel = flash_decode_kernel<T, D>;
  cudaFuncAttributes built{};
  MTL_CUDA_CHECK(cudaFuncGetAttributes(&built, kernel));
  if (compute_capability() < 90 || built.ptxVersion < 90) return 1;
  set_decode_smem<T, D>();
  MTL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(kDecodeClusterMax, 1, 1);
  cfg.blockDim = dim3(kThreads, 1, 1);
  cfg.dynamicSmemBytes = decode_smem_bytes<T, D>();
  int size = 1;
  MTL_CUDA_CHECK(cudaOccupancyMaxPotentialClusterSize(&size, kernel, &cfg));
  return std::min(size, kDecodeClusterMax);
}

template <class T, int D, bool kMask, int kWarps, int kStages>
void launch_typed(const Params& p, cudaStream_t stream) {
  constexpr int kRows = 16 * kWarps;
  constexpr int smem = (kRows + 2 * kStages * kBlockN) * D * static_cast<int>(sizeof(T));
  const auto kernel = flash_kernel<T, D, kMask, kWarps, kStages>;
  MTL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const dim3 grid((p.sq + kRows - 1) / kRows, p.hq, p.batch);
  kernel<<<grid, 32 * kWarps, smem, stream>>>(p);
  MTL_CUDA_CHECK_LAUNCH("sdpa flash kernel");
}

// Measured on an H200 (B8 H32 S2048 D128 bf16): 4 warps and 2 stages ran 3-4% faster than 8 warps with 2 to
// 4 stages, and a third stage with 4 warps changed nothing.
constexpr int kPrefillWarps = 4, kPrefillStages = 2;

template <class T>
void launch_dim(const Params& p, cudaStream_t stream) {
  constexpr int W = kPrefillWarps, S = kPrefillStages;
  if (p.d == 64)
    p.mask ? launch_typed<T, 64, true, W, S>(p, stream) : launch_typed<T, 64, false, W, S>(p, stream);
  else
    p.mask ? launch_typed<T, 128, true, W, S>(p, stream) : launch_typed<T, 128, false, W, S>(p, stream);
}

}  // namespace

void launch_flash(const Params& p, Kind kind, cudaStream_t stream) {
#if METALLIC_FLASH_SM90
  if (launch_flash_sm90(p, kind, stream)) return;
#endif
  kind == Kind::BF16 ? launch_dim<__nv_bfloat16>(p, stream) : launch_dim<__half>(p, stream);
}

int decode_cluster_limit(Kind kind, int d) {
  if (kind == Kind::BF16)
    return d == 64 ? decode_cluster_limit_typed<__nv_bfloat16, 64>()
                   : decode_cluster_limit_typed<__nv_bfloat16, 128>();
  return d == 64 ? decode_cluster_limit_typed<__half, 64>() : decode_cluster_limit_typed<__half, 128>();
}

void launch_flash_decode(const Params& p, const DecodeSplit& split, Kind kind, cudaStream_t stream) {
  if (kind == Kind::BF16)
    p.d == 64 ? launch_decode_typed<__nv_bfloat16, 64>(p, split, stream)
              : launch_decode_typed<__nv_bfloat16, 128>(p, split, stream);
  else
    p.d == 64 ? launch_decode_typed<__half, 64>(p, split, stream)
              : launch_decode_typed<__half, 128>(p, split, stream);
}

}  // namespace metallic::cuda::attn
