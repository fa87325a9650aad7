// Decode-time GEMV for block-quantized weights on integer dot products. Decoding every quant to a float and
// multiplying in f32 costs several instructions per weight byte, more than the memory system leaves time
// for; instead:
// - a first kernel rounds the rows of x to 8 bits in blocks of 32 (an f32 scale d and d * sum of the quants
//   per block, the latter for the weight types with an offset or a min), into pool scratch, normalising
//   them first under fused_linear's RMSNorm;
// - the GEMV multiplies four int8 pairs per dp4a against the weight quants as they are stored (nibbles
//   masked, Q6_K's bias subtracted bytewise) and applies the block scales once per 32 (Q6_K: 8) products,
//   then stores, adds into the output (the residual update), gates a row by its SwiGLU partner, or rotates
//   a q/k pair and stores it into q_out or the KV cache (rope_kv_epilogue.cuh);
// - both launch as programmatic dependents: the GEMV starts streaming its first weights while x is still
//   being quantized and waits for x only before using it.
// Three ways to stream the weights:
// - the grouped types (Q4_0X8, Q8_0X8: CUDA models load Q4_0 / Q8_0 matrices so) hold every block's quants
//   as aligned 16-byte vectors with the scales beside them, so they stream as dense weights do: a block of
//   4 warps owns a few rows, each thread loads whole quant blocks straight into registers, all loads of a
//   step in flight at once (7B-shape decode on an H200: Q4_0 571 against 436-444 tok/s, Q8_0 380-383
//   against 343-348, against the two ways below);
// - rows whose 256-element units are whole 16-byte vectors (Q8_0, Q4_0, Q4_K with K a multiple of 256 and
//   16-byte aligned rows, as model files lay them out; launch() says when Q8_0 goes the other way): a block
//   works on 32 rows at a time, one per lane, each warp on a share of the units; cp.async copies a unit of
//   all 32 rows and the x it meets into shared memory at a time (coalesced, through no registers, no
//   realignment), several units ahead, while the lanes decode an earlier one with 16-byte shared loads,
//   each lane its own row. The lanes of a warp meet the same x (broadcast loads), so the per-byte work is
//   little more than masks and dp4a, and rows of x beyond the first cost no weight decoding;
// - any other row (Q6_K's 210-byte blocks, odd block counts, 2-byte aligned views): a warp works on kRows
//   rows at a time and copies each tile into shared memory with aligned 16-byte loads, realigned as stored,
//   the next tile in flight while the current one is used.
#include <cuda_fp16.h>

#include <algorithm>

#include "backend/cuda/check.h"
#include "backend/cuda/gemv_common.cuh"
#include "backend/cuda/gemv_epilogue.cuh"
#include "backend/cuda/gemv_int8.h"
#include "backend/cuda/launch.h"
#include "backend/cuda/pdl.cuh"
#include "backend/cuda/rows.cuh"
#include "backend/scalar.h"
#include "metallic/core/context.h"
#include "metallic/core/half.h"
#include "metallic/core/memory_pool.h"
#include "metallic/model/quant_blocks.h"

namespace metallic::cuda {
namespace {

using gemv_detail::bias_at;
using gemv_detail::half_f;

constexpr int kWarps = 4;  // warps per block
constexpr int kRows = 2;   // weight rows per warp: x loads are shared by the rows (one row measured slower)
constexpr int kXBlock = 32;

// Rows of quantized x are padded to a multiple of this many elements (zeros), so a two-block unit cut short
// by K still reads x inside its row.
constexpr int64_t kXPad = 64;

// ---- x to 8 bits ---------------------------------------------------------------------------------------

// Elements e .. e + 7 of a row of K as floats, `fill` past K; with `whole` (the row 16-byte aligned) in one
// or two 16-byte loads.
template <class T>
__device__ __forceinline__ void load8(const T* row, int e, int K, bool whole, float fill, float (&v)[8]) {
  if (whole && e + 8 <= K) {
    widen(load_pack<T, 8>(row + e), v);
    return;
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = e + i < K ? backend::load(row[e + i]) : fill;
}

// One thread per 8 consecutive elements, 4 threads per block of 32. Elements in [K, Kp) are zeros. With
// Norm, x is first RMS-normalised over K and scaled by `gain` (null: ones) in f32: a block that covers the
// whole row sums the squares of its own values, otherwise each block reads the row once more for them.
// With `vec`, rows of x and the gain start on 16-byte boundaries and a thread loads its 8 elements whole.
template <class T, bool Norm>
__global__ void quantize_x_kernel(const T* __restrict__ x, int64_t ldx, int K, int Kp,
                                  const float* __restrict__ gain, float eps, int8_t* __restrict__ xq,
                                  float2* __restrict__ xs, bool vec, bool static_gain) {
  const int m = blockIdx.y;
  const int e = 8 * (blockIdx.x * blockDim.x + threadIdx.x);
  // A static gain (a model's weight) is loaded before the wait, off the path from the producer's end to this
  // kernel's (7B-shape decode on an H200: Q4_0 641 against 629 tok/s, Q8_0 alike).
  float g[8] = {1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f};
  if (Norm && gain && static_gain) load8(gain, e, K, vec, 1.f, g);
  wait_for_producer();  // x is written by the kernel before
  // The GEMV may start streaming weights now. Not before the wait: launched while the kernel before still
  // runs, its blocks would take that kernel's places and bandwidth (7B-shape decode on an H200: Q4_0 615.6
  // against 604.4 tok/s, Q8_0 398.6 against 393.8, with the trigger here).
  allow_dependents();
  float v[8];
  load8(x + m * ldx, e, K, vec, 0.f, v);
  if constexpr (Norm) {
    float ss = 0.f;
    if (gridDim.x == 1) {
#pragma unroll
      for (int i = 0; i < 8; ++i) ss = fmaf(v[i], v[i], ss);
    } else {
#pragma unroll 4
      for (int i = threadIdx.x; i < K; i += blockDim.x) {
        const float u = backend::load(x[m * ldx + i]);
        ss = fmaf(u, u, ss);
      }
    }
    const float inv = rsqrtf(row_sum(ss, static_cast<int>(blockDim.x)) / static_cast<float>(K) + eps);
    if (gain && !static_gain) load8(gain, e, K, vec, 1.f, g);
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] *= e + i < K ? inv * g[i] : 0.f;
  }
  float amax = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) amax = fmaxf(amax, fabsf(v[i]));
  // Kp is a multiple of 32 and the grid covers it in whole warps, so all 4 lanes of a block are present.
  amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
  amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
  const float d = amax / 127.f, id = d != 0.f ? 1.f / d : 0.f;
  int sum = 0;
  uint32_t packed[2] = {0, 0};
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int q = __float2int_rn(v[i] * id);
    sum += q;
    packed[i >> 2] |= (static_cast<uint32_t>(q) & 0xffu) << (8 * (i & 3));
  }
  sum += __shfl_xor_sync(0xffffffffu, sum, 1);
  sum += __shfl_xor_sync(0xffffffffu, sum, 2);
  if (e >= Kp) return;
  *reinterpret_cast<uint2*>(xq + m * static_cast<int64_t>(Kp) + e) = make_uint2(packed[0], packed[1]);
  if ((threadIdx.x & 3) == 0)
    xs[m * static_cast<int64_t>(Kp / kXBlock) + e / kXBlock] = make_float2(d, d * sum);
}

// ---- weight decoders ------------------------------------------------------------------------------------
// A decoder Q names: kTileElems/kTileBytes (a tile: whole blocks, a multiple of 16 bytes), kUnitsPerLane (a
// tile has 32 * kUnitsPerLane units), x_off(u) (first element of unit u in the tile), W prep(tile, u) (the
// unit's quants and scales), X load_x(xq, xs) (the x quants and block scales the unit meets, from the
// unit's first element) and dot(W, X, whole) (the unit's contribution; `whole` is false when K ends in the
// middle of a two-block unit, kPartial types only).

__device__ __forceinline__ uint32_t ld_sh32(const uint8_t* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}
__device__ __forceinline__ uint32_t ld_sh16(const uint8_t* p) {
  return *reinterpret_cast<const uint16_t*>(p);
}
// A word at a 2-byte aligned shared address.
__device__ __forceinline__ uint32_t ld_sh32_a2(const uint8_t* p) {
  return ld_sh16(p) | (ld_sh16(p + 2) << 16);
}

// 64 consecutive x quants and the scales of their two blocks.
struct X64 {
  int q[16];
  float4 s;  // d0, d0 * sum0, d1, d1 * sum1
};
__device__ __forceinline__ X64 load_x64(const int8_t* xq, const float2* xs) {
  X64 x;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int4 v = ld_global<int4>(reinterpret_cast<const int4*>(xq) + i);
    x.q[4 * i] = v.x, x.q[4 * i + 1] = v.y, x.q[4 * i + 2] = v.z, x.q[4 * i + 3] = v.w;
  }
  x.s = ld_global<float4>(xs);
  return x;
}

// Two consecutive blocks of an f16 scale and Words 32-bit words of quants (Q8_0: 8, Q4_0: 4), read as whole
// words from shared memory: block 0's quants start at byte 2, block 1's scale is the high half of word Words
// and its quants start at word Words + 1.
template <int Words>
__device__ __forceinline__ void load_block_pair(const uint8_t* b, int (&q)[2 * Words], float& d0, float& d1) {
  uint32_t wd[2 * Words + 1];
#pragma unroll
  for (int i = 0; i < 2 * Words + 1; ++i) wd[i] = ld_sh32(b + 4 * i);
  d0 = half_f(wd[0] & 0xffffu);
  d1 = half_f(wd[Words] >> 16);
#pragma unroll
  for (int i = 0; i < Words; ++i) {
    q[i] = static_cast<int>(__funnelshift_r(wd[i], wd[i + 1], 16));
    q[Words + i] = static_cast<int>(wd[Words + 1 + i]);
  }
}

struct Q8_0 {  // unit: two blocks (64 elements, 68 bytes, 4-byte aligned in the tile)
  static constexpr int kTileElems = 2048, kTileBytes = 2176, kUnitsPerLane = 1;
  static constexpr bool kPartial = true;
  struct W {
    int q[16];
    float d0, d1;
  };
  using X = X64;
  __device__ static int x_off(int u) { return 64 * u; }
  __device__ static W prep(const uint8_t* tile, int u) {
    W w;
    load_block_pair<8>(tile + 68 * u, w.q, w.d0, w.d1);
    return w;
  }
  __device__ static X load_x(const int8_t* xq, const float2* xs) { return load_x64(xq, xs); }
  __device__ static float dot(const W& w, const X& x, bool whole) {
    int a0 = 0, a1 = 0, b0 = 0, b1 = 0;  // two chains per block: dp4a latency, not issue, bounds one chain
#pragma unroll
    for (int i = 0; i < 8; i += 2) {
      a0 = __dp4a(w.q[i], x.q[i], a0), a1 = __dp4a(w.q[i + 1], x.q[i + 1], a1);
      b0 = __dp4a(w.q[8 + i], x.q[8 + i], b0), b1 = __dp4a(w.q[9 + i], x.q[9 + i], b1);
    }
    const float r = w.d0 * x.s.x * static_cast<float>(a0 + a1);
    return whole ? r + w.d1 * x.s.z * static_cast<float>(b0 + b1) : r;
  }
};

struct Q4_0 {  // unit: two blocks (64 elements, 36 bytes); a block's byte j holds elements j and j + 16
  static constexpr int kTileElems = 4096, kTileBytes = 2304, kUnitsPerLane = 2;
  static constexpr bool kPartial = true;
  struct W {
    int q[8];
    float d0, d1;
  };
  using X = X64;
  __device__ static int x_off(int u) { return 64 * u; }
  __device__ static W prep(const uint8_t* tile, int u) {
    W w;
    load_block_pair<4>(tile + 36 * u, w.q, w.d0, w.d1);
    return w;
  }
  __device__ static X load_x(const int8_t* xq, const float2* xs) { return load_x64(xq, xs); }
  // d (q - 8) . d_x q_x = d (d_x (q . q_x) - 8 d_x sum q_x).
  __device__ static float block(const int* q, const int* xq, float dx, float sx, float d) {
    int a = 0, b = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      a = __dp4a(q[i] & 0x0f0f0f0f, xq[i], a);
      b = __dp4a((q[i] >> 4) & 0x0f0f0f0f, xq[4 + i], b);
    }
    return d * (dx * static_cast<float>(a + b) - 8.f * sx);
  }
  __device__ static float dot(const W& w, const X& x, bool whole) {
    const float r = block(w.q, x.q, x.s.x, x.s.y, w.d0);
    return whole ? r + block(w.q + 4, x.q + 8, x.s.z, x.s.w, w.d1) : r;
  }
};

struct Q4_K {  // unit: 32 quant bytes of a super-block = groups 2j (low nibbles) and 2j + 1 (high nibbles)
  static constexpr int kTileElems = 4096, kTileBytes = 2304, kUnitsPerLane = 2;
  static constexpr bool kPartial = false;
  struct W {
    int q[8];
    float d1, m1, d2, m2;
  };
  using X = X64;
  __device__ static int x_off(int u) { return 256 * (u >> 2) + 64 * (u & 3); }
  __device__ static W prep(const uint8_t* tile, int u) {
    W w;
    const uint8_t* b = tile + 144 * (u >> 2);
    const int j = u & 3;
    const uint4 q0 = *reinterpret_cast<const uint4*>(b + 16 + 32 * j),
                q1 = *reinterpret_cast<const uint4*>(b + 32 + 32 * j);
    w.q[0] = q0.x, w.q[1] = q0.y, w.q[2] = q0.z, w.q[3] = q0.w;
    w.q[4] = q1.x, w.q[5] = q1.y, w.q[6] = q1.z, w.q[7] = q1.w;
    const uint32_t h = ld_sh32(b);
    const float d = half_f(h & 0xffffu), dmin = half_f(h >> 16);
    uint8_t sc, m;
    quant::get_scale_min_k4(2 * j, b + 4, sc, m);
    w.d1 = d * sc, w.m1 = dmin * m;
    quant::get_scale_min_k4(2 * j + 1, b + 4, sc, m);
    w.d2 = d * sc, w.m2 = dmin * m;
    return w;
  }
  __device__ static X load_x(const int8_t* xq, const float2* xs) { return load_x64(xq, xs); }
  // (d sc q - dmin m) . d_x q_x = d sc d_x (q . q_x) - dmin m (d_x sum q_x), per group of 32.
  __device__ static float dot(const W& w, const X& x, bool) {
    int a = 0, b = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      a = __dp4a(w.q[i] & 0x0f0f0f0f, x.q[i], a);
      b = __dp4a((w.q[i] >> 4) & 0x0f0f0f0f, x.q[8 + i], b);
    }
    return w.d1 * x.s.x * static_cast<float>(a) - w.m1 * x.s.y + w.d2 * x.s.z * static_cast<float>(b) -
           w.m2 * x.s.w;
  }
};

struct Q6_K {  // unit (half h, columns 8c..8c+7): the 4 runs of 8 elements 128h + 8c + 32p, p = 0..3
  static constexpr int kTileElems = 2048, kTileBytes = 1680, kUnitsPerLane = 2;
  static constexpr bool kPartial = false;
  struct W {
    uint32_t ql[4], qh[2];  // ql[0..1]: bytes 8c.. of the half's low 32, ql[2..3]: of its high 32
    float s[4];
  };
  struct X {
    int2 q[4];  // run p's 8 quants
    float d[4];
  };
  __device__ static int x_off(int u) { return 256 * (u >> 3) + 128 * ((u >> 2) & 1) + 8 * (u & 3); }
  __device__ static W prep(const uint8_t* tile, int u) {
    W w;
    const uint8_t* b = tile + 210 * (u >> 3);  // only 2-byte aligned
    const int h = (u >> 2) & 1, c = u & 3;
    const uint8_t* ql = b + 64 * h + 8 * c;
    w.ql[0] = ld_sh32_a2(ql), w.ql[1] = ld_sh32_a2(ql + 4), w.ql[2] = ld_sh32_a2(ql + 32),
    w.ql[3] = ld_sh32_a2(ql + 36);
    w.qh[0] = ld_sh32_a2(b + 128 + 32 * h + 8 * c), w.qh[1] = ld_sh32_a2(b + 132 + 32 * h + 8 * c);
    const float d = half_f(ld_sh16(b + 208));
    const auto* sc = reinterpret_cast<const int8_t*>(b + 192 + 8 * h + (c >> 1));
#pragma unroll
    for (int p = 0; p < 4; ++p) w.s[p] = d * static_cast<float>(sc[2 * p]);
    return w;
  }
  // Run p starts 32p elements on, in x block p of the unit's first element.
  __device__ static X load_x(const int8_t* xq, const float2* xs) {
    X x;
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      x.q[p] = ld_global<int2>(xq + 32 * p);
      x.d[p] = ld_global<float>(&xs[p].x);
    }
    return x;
  }
  // d sc (q - 32) . d_x q_x, the 6-bit quants rebuilt bytewise and biased to signed bytes.
  __device__ static float dot(const W& w, const X& x, bool) {
    float r = 0.f;
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      int a = 0;
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const uint32_t lo = (w.ql[2 * (p & 1) + i] >> (4 * (p >> 1))) & 0x0f0f0f0fu;
        const uint32_t hi = ((w.qh[i] >> (2 * p)) & 0x03030303u) << 4;
        a = __dp4a(static_cast<int>(__vsub4(lo | hi, 0x20202020u)), i ? x.q[p].y : x.q[p].x, a);
      }
      r += w.s[p] * x.d[p] * static_cast<float>(a);
    }
    return r;
  }
};

// Stores 16-byte vector v of a tile whose first byte sits `a` (even) bytes into its aligned vector, so that
// tile byte 0 lands at `dst` (16-byte aligned; 16 spare bytes before it absorb the shift).
__device__ __forceinline__ void store_shifted(uint8_t* dst, int v, int a, const uint4& q) {
  uint8_t* p = dst + 16 * v - a;
  if (a == 0) {
    *reinterpret_cast<uint4*>(p) = q;
  } else if ((a & 3) == 0) {
    auto* p32 = reinterpret_cast<uint32_t*>(p);
    p32[0] = q.x, p32[1] = q.y, p32[2] = q.z, p32[3] = q.w;
  } else {
    *reinterpret_cast<uint16_t*>(p) = static_cast<uint16_t>(q.x);
    auto* p32 = reinterpret_cast<uint32_t*>(p + 2);
    p32[0] = __funnelshift_r(q.x, q.y, 16), p32[1] = __funnelshift_r(q.y, q.z, 16),
    p32[2] = __funnelshift_r(q.z, q.w, 16);
    *reinterpret_cast<uint16_t*>(p + 14) = static_cast<uint16_t>(q.w >> 16);
  }
}

// Adds the contributions of one tile (elements e0.., staged at tile[r] for every row r) to acc.
template <class Q, int MM, int R>
__device__ __forceinline__ void tile_dot(const uint8_t* const (&tile)[R], int e0, int lane,
                                         const int8_t* __restrict__ xq, const float2* __restrict__ xs, int Kp,
                                         int M, int K, float (&acc)[R][MM]) {
  const int lds = Kp / kXBlock;
#pragma unroll
  for (int j = 0; j < Q::kUnitsPerLane; ++j) {
    const int u = lane + 32 * j;
    const int e = e0 + Q::x_off(u);
    if (e >= K) break;
    const bool whole = !Q::kPartial || e + kXBlock < K;
    typename Q::W wu[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wu[r] = Q::prep(tile[r], u);
#pragma unroll
    for (int m = 0; m < MM; ++m) {
      const int mr = min(m, M - 1);  // rows of x past M repeat the last; their sums are dropped
      const typename Q::X xu = Q::load_x(xq + mr * static_cast<int64_t>(Kp) + e, xs + mr * lds + e / kXBlock);
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r][m] += Q::dot(wu[r], xu, whole);
    }
  }
}

// Weight row r of row group g: rows gR.. in order, under SwiGLU (R = 2) gate row g and up row g + N, under
// RoPE (rk.q_out set) the two elements of a rotation pair.
template <int R>
__device__ __forceinline__ int group_row(int g, int r, int N, LinearEpilogue e, const RopeKvEpilogue& rk) {
  if (rk.q_out) return rk.row(g, r, R);
  return e == LinearEpilogue::SwiGLU ? g + r * N : g * R + r;
}

// Stores y + bias into out [M, N] under the epilogue (Store or Accumulate).
template <class T>
__device__ __forceinline__ void put(T* out, int64_t at, float y, LinearEpilogue e) {
  out[at] = T(e == LinearEpilogue::Accumulate ? backend::load(out[at]) + y : y);
}

// Sums the lanes' partial dot products of row group g, writes them (out [M, N]) and clears acc.
template <class T, int MM, int R>
__device__ __forceinline__ void write_group(float (&acc)[R][MM], int g, int lane, int M, int N,
                                            const float* __restrict__ bias, T* __restrict__ out,
                                            LinearEpilogue e, const RopeKvEpilogue& rk) {
  float y[R][MM];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < MM; ++m) {
      float v = acc[r][m];
      acc[r][m] = 0.f;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      y[r][m] = v;
    }
  if (rk.q_out) {
    static_assert(R == 2, "a row group holds one rotation pair");
    const int ra = rk.row(g, 0, R), rb = rk.row(g, 1, R), i = rk.pair(g, 0, R);
    const double inv_freq = rk.freq.inv_freq(i);
#pragma unroll
    for (int m = 0; m < MM; ++m)
      if (lane == m % 32 && m < M)
        rk.store(m, ra / rk.d, i, y[0][m] + bias_at(bias, ra), y[1][m] + bias_at(bias, rb), inv_freq);
    return;
  }
  if (e == LinearEpilogue::SwiGLU) {
    static_assert(R == 2, "SwiGLU pairs one gate row with one up row");
#pragma unroll
    for (int m = 0; m < MM; ++m) {
      const float gate = y[0][m] + bias_at(bias, g), up = y[1][m] + bias_at(bias, g + N);
      if (lane == m % 32 && g < N && m < M)
        out[static_cast<int64_t>(m) * N + g] = T(gemv_detail::swiglu_of(gate, up));
    }
    return;
  }
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < MM; ++m) {
      const int n = g * R + r;
      if (lane == (r * MM + m) % 32 && n < N && m < M)
        put(out, static_cast<int64_t>(m) * N + n, y[r][m] + bias_at(bias, n), e);
    }
}

// Each warp streams through the row groups gw, gw + W, ... (W warps in the grid, which fills the GPU once)
// tile by tile, the next tile (of this row group or the next) in flight in registers while the current one
// is used from shared memory, so a warp keeps weight bytes in flight from its first load to its last.
template <class Q, class T, int MM, int R>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_int8_kernel(const uint8_t* __restrict__ w, int64_t row_bytes, int64_t data_bytes,
                     const int8_t* __restrict__ xq, const float2* __restrict__ xs, int Kp, int M, int K,
                     int N, const float* __restrict__ bias, T* __restrict__ out, LinearEpilogue e,
                     const RopeKvEpilogue rk) {
  constexpr int kVecsPerTile = Q::kTileBytes / 16 + 1;  // one more when the row is not 16-byte aligned
  constexpr int kLoads = (kVecsPerTile + 31) / 32;
  constexpr int kBuf = Q::kTileBytes + 32;
  __shared__ __align__(16) uint8_t smem[kWarps][R][kBuf];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int groups = e == LinearEpilogue::SwiGLU ? N : (N + R - 1) / R, stride = gridDim.x * kWarps;
  const int rows_of_w = e == LinearEpilogue::SwiGLU ? 2 * N : N;  // RoPE: N rows, N / R pairs
  const int tiles = (K + Q::kTileElems - 1) / Q::kTileElems;
  int g = blockIdx.x * kWarps + warp;
  if (g >= groups) return;
  // Aligned 16-byte vectors covering each row: every one holds at least one byte of the row, so none
  // reaches past the allocation. `rows` and `mis` describe the group whose tile is loaded into `buf`.
  const uint8_t* rows[R];
  int mis[R];
  auto locate = [&](int group) {
#pragma unroll
    for (int r = 0; r < R; ++r) {  // rows past the last re-read it; their sums are dropped
      const uint8_t* p =
          w + static_cast<int64_t>(min(group_row<R>(group, r, N, e, rk), rows_of_w - 1)) * row_bytes;
      mis[r] = static_cast<int>(reinterpret_cast<uintptr_t>(p) & 15);
      rows[r] = p - mis[r];
    }
  };
  uint4 buf[R][kLoads];
  auto load = [&](int t) {
    const int64_t off = static_cast<int64_t>(t) * Q::kTileBytes;
    const int bytes = static_cast<int>(min(static_cast<int64_t>(Q::kTileBytes), data_bytes - off));
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int nv = (mis[r] + bytes + 15) >> 4;
#pragma unroll
      for (int i = 0; i < kLoads; ++i) {
        const int v = lane + 32 * i;
        buf[r][i] = v < nv ? ld_stream(rows[r] + off + 16 * v) : make_uint4(0, 0, 0, 0);
      }
    }
  };
  const uint8_t* tile[R];
#pragma unroll
  for (int r = 0; r < R; ++r) tile[r] = smem[warp][r] + 16;
  locate(g);
  load(0);
  wait_for_producer();  // x is quantized from here on
  float acc[R][MM] = {};
  for (int t = 0;;) {
    __syncwarp();
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int i = 0; i < kLoads; ++i)
        if (lane + 32 * i < kVecsPerTile) store_shifted(smem[warp][r] + 16, lane + 32 * i, mis[r], buf[r][i]);
    __syncwarp();
    const bool last = t + 1 == tiles;
    const int next_g = last ? g + stride : g;
    if (next_g < groups) {
      if (last) locate(next_g);
      load(last ? 0 : t + 1);
    }
    tile_dot<Q, MM, R>(tile, t * Q::kTileElems, lane, xq, xs, Kp, M, K, acc);
    if (!last) {
      ++t;
      continue;
    }
    write_group<T, MM, R>(acc, g, lane, M, N, bias, out, e, rk);
    if (next_g >= groups) break;
    g = next_g;
    t = 0;
  }
}

template <class Q, class T, int MM>
void launch_q(const uint8_t* w, int64_t row_bytes, int64_t data_bytes, const int8_t* xq, const float2* xs,
              int Kp, int M, int K, int N, const float* bias, T* out, LinearEpilogue e,
              const RopeKvEpilogue& rk, cudaStream_t s) {
  const int groups = e == LinearEpilogue::SwiGLU ? N : (N + kRows - 1) / kRows;
  const unsigned blocks = static_cast<unsigned>((groups + kWarps - 1) / kWarps);
  auto kernel = gemv_int8_kernel<Q, T, MM, kRows>;
  static const unsigned resident = resident_blocks(kernel, kWarps * 32, 0);
  launch_dependent(kernel, std::min(blocks, resident), kWarps * 32, 0, s, w, row_bytes, data_bytes, xq, xs,
                   Kp, M, K, N, bias, out, e, rk);
}

// ---- 32 rows per group, one per lane --------------------------------------------------------------------
// A unit decoder U names kBytes (the bytes of 256 elements of a row, a multiple of 16), kWarps (warps per
// block) and dot<MM>(w, x, acc): the products of one unit, its words in w, with rows 0..MM-1 of the unit's
// x staged in shared memory, added to acc.

constexpr int kUnitElems = 256;
// A unit's x in shared memory, per row of x: the 256 quants, then the 8 blocks' (d, d * sum).
constexpr int kXUnitBytes = kUnitElems + kUnitElems / kXBlock * 8;

// Four unsigned bytes of a times four signed bytes of b, plus c: nibbles masked in place (up to 0xf0) stay
// unsigned.
__device__ __forceinline__ int dp4a_us(uint32_t a, int b, int c) {
  int d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

// The word at an even byte offset (a compile-time constant once unrolled) of words held in registers.
template <int N>
__device__ __forceinline__ uint32_t word_at(const uint32_t (&w)[N], int byte) {
  return byte & 2 ? __funnelshift_r(w[byte >> 2], w[(byte >> 2) + 1], 16) : w[byte >> 2];
}
template <int N>
__device__ __forceinline__ float half_at(const uint32_t (&w)[N], int byte) {
  return half_f(byte & 2 ? w[byte >> 2] >> 16 : w[byte >> 2]);
}

// Block b of row m of a unit's staged x: its 32 quants and (d, d * sum). Every lane reads the same address.
struct X32 {
  int4 lo, hi;
  float2 s;
};
__device__ __forceinline__ X32 x_block(const uint8_t* x, int m, int b) {
  const uint8_t* r = x + m * kXUnitBytes;
  const auto* q = reinterpret_cast<const int4*>(r + 32 * b);
  return {q[0], q[1], reinterpret_cast<const float2*>(r + kUnitElems)[b]};
}

// Q8_0 and Q4_0: eight blocks of kBlockBytes, an f16 scale then the quants.
template <int kBlockBytes>
struct Unit32 {
  static constexpr int kBytes = 8 * kBlockBytes;
  static constexpr int kWords = kBytes / 4;
  // The quant words of block b.
  template <int NQ>
  __device__ static void quants(const uint32_t (&w)[kWords], int b, uint32_t (&q)[NQ]) {
#pragma unroll
    for (int i = 0; i < NQ; ++i) q[i] = word_at(w, kBlockBytes * b + 2 + 4 * i);
  }
};

// q . x of a Q8_0 block's quant words q with x's 32 quants, in two chains (dp4a latency, not issue, bounds
// one).
__device__ __forceinline__ int q8_0_dot(const uint32_t (&q)[8], const int4& lo, const int4& hi) {
  int a0 = __dp4a(static_cast<int>(q[0]), lo.x, 0), a1 = __dp4a(static_cast<int>(q[4]), hi.x, 0);
  a0 = __dp4a(static_cast<int>(q[1]), lo.y, a0), a1 = __dp4a(static_cast<int>(q[5]), hi.y, a1);
  a0 = __dp4a(static_cast<int>(q[2]), lo.z, a0), a1 = __dp4a(static_cast<int>(q[6]), hi.z, a1);
  a0 = __dp4a(static_cast<int>(q[3]), lo.w, a0), a1 = __dp4a(static_cast<int>(q[7]), hi.w, a1);
  return a0 + a1;
}

// 16 (q . x) of a Q4_0 block with x's 32 quants, its quant words masked to low nibbles (lo_q, against x's
// elements 0..15) and high nibbles in place (hi_q, 16 times their value, against 16..31).
__device__ __forceinline__ int q4_0_dot16(const uint32_t (&lo_q)[4], const uint32_t (&hi_q)[4],
                                          const int4& lo, const int4& hi) {
  int a = dp4a_us(lo_q[0], lo.x, 0), c = dp4a_us(hi_q[0], hi.x, 0);
  a = dp4a_us(lo_q[1], lo.y, a), c = dp4a_us(hi_q[1], hi.y, c);
  a = dp4a_us(lo_q[2], lo.z, a), c = dp4a_us(hi_q[2], hi.z, c);
  a = dp4a_us(lo_q[3], lo.w, a), c = dp4a_us(hi_q[3], hi.w, c);
  return 16 * a + c;
}

struct RowsQ8_0 : Unit32<34> {
  // A unit of 32 rows is 8.5 KiB: 4 stages of 4 warps take 142 KiB (one row of x).
  static constexpr int kWarps = 4;
  template <int MM>
  __device__ static void dot(const uint32_t (&w)[kWords], const uint8_t* xu, float (&acc)[MM]) {
#pragma unroll
    for (int b = 0; b < 8; ++b) {
      const float d = half_at(w, 34 * b);
      uint32_t q[8];
      quants(w, b, q);
#pragma unroll
      for (int m = 0; m < MM; ++m) {
        const X32 x = x_block(xu, m, b);
        acc[m] = fmaf(d * x.s.x, static_cast<float>(q8_0_dot(q, x.lo, x.hi)), acc[m]);
      }
    }
  }
};

struct RowsQ4_0 : Unit32<18> {
  // A unit of 32 rows is 4.5 KiB: 4 stages of 8 warps take 155 KiB (one row of x).
  static constexpr int kWarps = 8;
  template <int MM>
  __device__ static void dot(const uint32_t (&w)[kWords], const uint8_t* xu, float (&acc)[MM]) {
#pragma unroll
    for (int b = 0; b < 8; ++b) {
      // The high nibbles are used in place, 16 times their value: the block sums 16 (q . q_x) and the
      // offset of 8 becomes 8 * 16 * sum q_x.
      const float d16 = half_at(w, 18 * b) * 0.0625f;
      uint32_t q[4], lo[4], hi[4];
      quants(w, b, q);
#pragma unroll
      for (int i = 0; i < 4; ++i) lo[i] = q[i] & 0x0f0f0f0fu, hi[i] = q[i] & 0xf0f0f0f0u;
#pragma unroll
      for (int m = 0; m < MM; ++m) {
        const X32 x = x_block(xu, m, b);
        acc[m] = fmaf(d16, fmaf(x.s.x, static_cast<float>(q4_0_dot16(lo, hi, x.lo, x.hi)), -128.f * x.s.y),
                      acc[m]);
      }
    }
  }
};

// Q4_K: one super-block (d, dmin, 12 bytes of 6-bit scales and mins, 4 chunks of 32 quant bytes whose low
// nibbles are group 2j and high nibbles group 2j + 1).
struct RowsQ4_K {
  static constexpr int kBytes = 144, kWords = 36;
  static constexpr int kWarps = 8;  // as Q4_0
  template <int MM>
  __device__ static void dot(const uint32_t (&w)[kWords], const uint8_t* xu, float (&acc)[MM]) {
    const float d = half_f(w[0]), dmin = half_f(w[0] >> 16);
    // The scales and mins of groups 0..3 and 4..7, a byte each (quant::get_scale_min_k4, four at a time).
    const uint32_t sc_lo = w[1] & 0x3f3f3f3fu, sc_hi = (w[3] & 0x0f0f0f0fu) | ((w[1] >> 2) & 0x30303030u);
    const uint32_t mn_lo = w[2] & 0x3f3f3f3fu,
                   mn_hi = ((w[3] >> 4) & 0x0f0f0f0fu) | ((w[2] >> 2) & 0x30303030u);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      // Groups 2j and 2j + 1: bytes 2j % 4 and 2j % 4 + 1 of the word of groups 0..3 or 4..7.
      const uint32_t sc = (j < 2 ? sc_lo : sc_hi) >> (16 * (j & 1)),
                     mn = (j < 2 ? mn_lo : mn_hi) >> (16 * (j & 1));
      const float d1 = d * static_cast<float>(sc & 0xff), m1 = dmin * static_cast<float>(mn & 0xff);
      // The high nibbles are used in place, 16 times their value.
      const float d2 = d * static_cast<float>((sc >> 8) & 0xff) * 0.0625f,
                  m2 = dmin * static_cast<float>((mn >> 8) & 0xff);
      uint32_t lo[8], hi[8];
#pragma unroll
      for (int i = 0; i < 8; ++i)
        lo[i] = w[4 + 8 * j + i] & 0x0f0f0f0fu, hi[i] = w[4 + 8 * j + i] & 0xf0f0f0f0u;
#pragma unroll
      for (int m = 0; m < MM; ++m) {
        const X32 x1 = x_block(xu, m, 2 * j), x2 = x_block(xu, m, 2 * j + 1);
        int a = dp4a_us(lo[0], x1.lo.x, 0), c = dp4a_us(hi[0], x2.lo.x, 0);
        a = dp4a_us(lo[1], x1.lo.y, a), c = dp4a_us(hi[1], x2.lo.y, c);
        a = dp4a_us(lo[2], x1.lo.z, a), c = dp4a_us(hi[2], x2.lo.z, c);
        a = dp4a_us(lo[3], x1.lo.w, a), c = dp4a_us(hi[3], x2.lo.w, c);
        a = dp4a_us(lo[4], x1.hi.x, a), c = dp4a_us(hi[4], x2.hi.x, c);
        a = dp4a_us(lo[5], x1.hi.y, a), c = dp4a_us(hi[5], x2.hi.y, c);
        a = dp4a_us(lo[6], x1.hi.z, a), c = dp4a_us(hi[6], x2.hi.z, c);
        a = dp4a_us(lo[7], x1.hi.w, a), c = dp4a_us(hi[7], x2.hi.w, c);
        // (d sc q - dmin m) . d_x q_x = d sc d_x (q . q_x) - dmin m (d_x sum q_x), per group.
        acc[m] += fmaf(d1 * x1.s.x, static_cast<float>(a), -m1 * x1.s.y) +
                  fmaf(d2 * x2.s.x, static_cast<float>(c), -m2 * x2.s.y);
      }
    }
  }
};

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

// Shared memory of the rows kernel: per warp kStages stages (a unit of 32 rows, then its x), then the
// warps' partial sums.
template <class U, int MM>
struct RowsLayout {
  static constexpr int kWeights = 32 * U::kBytes, kStageBytes = kWeights + MM * kXUnitBytes;
  static constexpr int bytes(int stages) { return U::kWarps * (stages * kStageBytes + MM * 32 * 4); }
  // Units in flight per warp: four (three ahead of the one decoded) where they fit, else three.
  static constexpr int kStages = bytes(4) <= 200 * 1024 ? 4 : 3;
  static constexpr int kBytes = bytes(kStages);
};

// Persistent: block b takes the row groups b, b + gridDim.x, ... (rows 32g.., lane l: row 32g + l), and warp
// v the units v, v + kWarps, ... of each. A warp's copies run kStages - 1 units ahead through the groups; the
// warps' partial sums meet in shared memory at the end of each group.
template <class U, class T, int MM>
__global__ void __launch_bounds__(U::kWarps * 32)
    gemv_rows_kernel(const uint8_t* __restrict__ w, int64_t row_bytes, int units,
                     const int8_t* __restrict__ xq, const float2* __restrict__ xs, int Kp, int M, int N,
                     const float* __restrict__ bias, T* __restrict__ out, LinearEpilogue e) {
  using L = RowsLayout<U, MM>;
  constexpr int kVecs = U::kBytes / 16, kStages = L::kStages, kStage = L::kStageBytes;
  constexpr int kXVecs = kXUnitBytes / 16;  // per row of x
  extern __shared__ __align__(16) uint8_t smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  uint8_t* stages = smem + warp * kStages * kStage;
  float* part = reinterpret_cast<float*>(smem + U::kWarps * kStages * kStage);  // [warp][m][lane]
  const uint32_t sbase = static_cast<uint32_t>(__cvta_generic_to_shared(stages));
  const int groups = (N + 31) / 32;
  const int per = warp < units ? (units - warp + U::kWarps - 1) / U::kWarps : 0;  // units per group
  const int mine = (groups - static_cast<int>(blockIdx.x) + static_cast<int>(gridDim.x) - 1) /
                   static_cast<int>(gridDim.x);  // groups of this block (the grid is at most `groups`)
  const int total = per * mine;
  // Copy i of a unit moves vector (lane + 32 i) % kVecs of row (lane + 32 i) / kVecs to byte 16 (lane + 32 i)
  // of the stage: the 32 rows' units one after the other.
  uint32_t src_off[kVecs];
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int c = lane + 32 * i;
    src_off[i] = static_cast<uint32_t>(c / kVecs * row_bytes) + 16 * (c % kVecs);
  }
  auto unit_of = [&](int k) { return warp + (k % per) * U::kWarps; };
  auto group_of = [&](int k) { return static_cast<int>(blockIdx.x) + k / per * static_cast<int>(gridDim.x); };
  auto issue_weights = [&](int k) {
    const int r0 = 32 * group_of(k);
    const uint8_t* src = w + r0 * row_bytes + static_cast<int64_t>(unit_of(k)) * U::kBytes;
    const uint32_t dst = sbase + (k % kStages) * kStage + 16 * lane;
    if (r0 + 32 <= N) {
#pragma unroll
      for (int i = 0; i < kVecs; ++i) cp_async16(dst + 512 * i, src + src_off[i]);
    } else {  // rows past N re-read the last one; their sums are dropped
#pragma unroll
      for (int i = 0; i < kVecs; ++i) {
        const int c = lane + 32 * i, r = min(r0 + c / kVecs, N - 1) - r0;
        cp_async16(dst + 512 * i, src + r * row_bytes + 16 * (c % kVecs));
      }
    }
  };
  auto issue_x = [&](int k) {  // rows of x past M repeat the last; their sums are dropped
    const int e = unit_of(k) * kUnitElems;
    const uint32_t dst = sbase + (k % kStages) * kStage + L::kWeights;
    for (int c = lane; c < MM * kXVecs; c += 32) {
      const int m = c / kXVecs, v = c - m * kXVecs, mr = min(m, M - 1);
      const void* src =
          v < kUnitElems / 16
              ? static_cast<const void*>(xq + mr * static_cast<int64_t>(Kp) + e + 16 * v)
              : static_cast<const void*>(xs + mr * (Kp / kXBlock) + e / kXBlock + 2 * (v - kUnitElems / 16));
      cp_async16(dst + 16 * c, src);
    }
  };
  // Weights do not depend on the previous kernel: the first ones stream before it has finished.
#pragma unroll
  for (int k = 0; k < kStages - 1; ++k)
    if (k < total) issue_weights(k);
  wait_for_producer();  // x is quantized from here on
#pragma unroll
  for (int k = 0; k < kStages - 1; ++k) {
    if (k < total) issue_x(k);
    cp_async_commit();
  }
  float acc[MM] = {};
  for (int j = 0, k = 0; j < mine; ++j) {
    for (int i = 0; i < per; ++i, ++k) {
      cp_async_wait<kStages - 2>();  // unit k and its x have landed (this lane's copies) ...
      __syncwarp();                  // ... and every lane's; the stage read last round is free again
      if (k + kStages - 1 < total) {
        issue_weights(k + kStages - 1);
        issue_x(k + kStages - 1);
      }
      cp_async_commit();
      const uint8_t* stage = stages + (k % kStages) * kStage;
      const auto* p = reinterpret_cast<const uint4*>(stage + lane * U::kBytes);
      uint32_t wv[U::kWords];
#pragma unroll
      for (int v = 0; v < kVecs; ++v) {
        const uint4 q = p[v];
        wv[4 * v] = q.x, wv[4 * v + 1] = q.y, wv[4 * v + 2] = q.z, wv[4 * v + 3] = q.w;
      }
      U::template dot<MM>(wv, stage + L::kWeights, acc);
    }
#pragma unroll
    for (int m = 0; m < MM; ++m) {
      part[(warp * MM + m) * 32 + lane] = acc[m];
      acc[m] = 0.f;
    }
    __syncthreads();
    const int r0 = 32 * (static_cast<int>(blockIdx.x) + j * static_cast<int>(gridDim.x));
    for (int t = threadIdx.x; t < MM * 32; t += blockDim.x) {
      const int m = t >> 5, l = t & 31, n = r0 + l;
      if (m >= M || n >= N) continue;
      float v = bias_at(bias, n);
#pragma unroll
      for (int i = 0; i < U::kWarps; ++i) v += part[(i * MM + m) * 32 + l];
      put(out, static_cast<int64_t>(m) * N + n, v, e);
    }
    __syncthreads();  // `part` is written again for the next group
  }
}

template <class U, class T, int MM>
void launch_rows(const uint8_t* w, int64_t row_bytes, int units, const int8_t* xq, const float2* xs, int Kp,
                 int M, int N, const float* bias, T* out, LinearEpilogue e, cudaStream_t s) {
  constexpr int smem = RowsLayout<U, MM>::kBytes;
  auto kernel = gemv_rows_kernel<U, T, MM>;
  // Shared memory above the default 48 KiB, allowed once per kernel (no runtime call when captured).
  static const unsigned resident = [&] {
    MTL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    return resident_blocks(kernel, U::kWarps * 32, smem);
  }();
  const unsigned groups = static_cast<unsigned>((N + 31) / 32);
  launch_dependent(kernel, std::min(groups, resident), U::kWarps * 32, smem, s, w, row_bytes, units, xq, xs,
                   Kp, M, N, bias, out, e);
}

// ---- grouped rows (Q4_0X8, Q8_0X8) ----------------------------------------------------------------------
// Every block's quants are an aligned 16-byte vector (two for Q8_0X8) and its scale sits in its group's first
// 16 bytes, so the dense GEMV's scheme carries over: a block owns R weight rows, thread t takes the quant
// blocks t, t + 128, ... of each, U per row and step with all their loads issued before any is used (long
// Q4_0X8 rows: half-size steps, each issued before the one before is used), and the x quants it meets come
// through L1 (every row reuses them); gemv_epilogue.cuh joins the warps.

template <class T>
struct GroupedArgs {
  const uint8_t* w;
  int64_t row_bytes;
  const int8_t* xq;
  const float2* xs;
  int Kp, K;
  gemv_detail::GemvOut<T> o;
};

// One block's quants q (QB bytes) against x's block, scaled by the weight scale dw; Q4_0's offset of 8 is
// taken off through x's sum.
template <int QB>
__device__ __forceinline__ float grouped_dot(const uint4 (&q)[QB / 16], float dw, const X32& x) {
  if constexpr (QB == 16) {
    const uint32_t w[4] = {q[0].x, q[0].y, q[0].z, q[0].w};
    uint32_t lo[4], hi[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) lo[i] = w[i] & 0x0f0f0f0fu, hi[i] = w[i] & 0xf0f0f0f0u;
    return 0.0625f * dw * fmaf(x.s.x, static_cast<float>(q4_0_dot16(lo, hi, x.lo, x.hi)), -128.f * x.s.y);
  } else {
    const uint32_t w[8] = {q[0].x, q[0].y, q[0].z, q[0].w, q[1].x, q[1].y, q[1].z, q[1].w};
    return dw * x.s.x * static_cast<float>(q8_0_dot(w, x.lo, x.hi));
  }
}

// U quant blocks per row and step (default: 8 quant vectors in flight per thread). With Ahead, a block keeps
// two steps of loads in flight (stream_steps).
template <int QB, int R>
constexpr int kGroupedUnroll = gemv_detail::step_unroll(QB / 16 * R);

// One step's quants and scales.
template <int QB, int R, int U>
struct GroupedStep {
  uint4 q[U][R][QB / 16];
  uint32_t d[U][R];
};

// With G > 1 (one row of x, rows of at most one step, not RoPE) block b takes the row groups b,
// b + gridDim.x, ..., G of them, each group's loads issued before the group before is used.
template <int QB, class T, int MM, int R, gemv_detail::Epilogue Epi, int U = kGroupedUnroll<QB, R>,
          bool Ahead = false, int G = 1>
__global__ void __launch_bounds__(gemv_detail::kBlockThreads) gemv_grouped_kernel(GroupedArgs<T> a) {
  using namespace gemv_detail;
  constexpr int V = QB / 16, kGroupBytes = 16 + 8 * QB, kStep = kBlockThreads * U;
  const int tid = threadIdx.x, M = a.o.M, blocks = a.K / kXBlock, lds = a.Kp / kXBlock;
  const uint8_t* rows[R];
  const auto point_rows = [&](int group) {
#pragma unroll
    for (int r = 0; r < R; ++r)
      rows[r] = a.w + static_cast<int64_t>(block_row<R, Epi>(a.o, group, r)) * a.row_bytes;
  };
  point_rows(blockIdx.x);
  const double inv_freq = pair_inv_freq<MM, R, Epi>(a.o, tid);
  float acc[R][MM] = {};
  const float unused[MM] = {};
  using Step = GroupedStep<QB, R, U>;
  // The quants and scales of the step whose first block is b0 (zeros past the row).
  const auto load = [&](int b0, Step& st) {
#pragma unroll
    for (int j = 0; j < U; ++j) {
      const int b = b0 + kBlockThreads * j;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const uint8_t* g = rows[r] + static_cast<int64_t>(b >> 3) * kGroupBytes;
#pragma unroll
        for (int v = 0; v < V; ++v)
          st.q[j][r][v] = b < blocks ? ld_stream(g + 16 + QB * (b & 7) + 16 * v) : make_uint4(0, 0, 0, 0);
        st.d[j][r] =
            b < blocks ? ld_global<unsigned short>(reinterpret_cast<const unsigned short*>(g) + (b & 7)) : 0u;
      }
    }
  };
  const auto use = [&](int b0, const Step& st) {
#pragma unroll
    for (int j = 0; j < U; ++j) {
      const int b = b0 + kBlockThreads * j;
      if (b >= blocks) break;
      float dw[R];
#pragma unroll
      for (int r = 0; r < R; ++r) dw[r] = half_f(st.d[j][r]);
#pragma unroll
      for (int m = 0; m < MM; ++m) {
        const int mr = min(m, M - 1);  // rows of x past M repeat the last; their sums are dropped
        const auto* xp = reinterpret_cast<const int4*>(a.xq + mr * static_cast<int64_t>(a.Kp) + kXBlock * b);
        const X32 x{ld_global<int4>(xp), ld_global<int4>(xp + 1), ld_global<float2>(a.xs + mr * lds + b)};
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r][m] += grouped_dot<QB>(st.q[j][r], dw[r], x);
      }
    }
  };
  // No early trigger: the next kernel launches when this one ends. Measured on an H200, 7B-shape Q8_0
  // decode ran at 381 tok/s so against 351 with the dense kernel's early trigger (Q4_0 alike either way).
  if constexpr (G == 1) {
    stream_steps<Ahead, Step>(tid, blocks, kStep, load, use);  // x is quantized past the wait
    finish_block<T, MM, R, false, Epi, false>(acc, unused, a.K, 0.f, a.o, inv_freq, blockIdx.x);
  } else {
    const int groups = (a.o.N + R - 1) / R;
    Step cur, next;
    load(tid, cur);
    wait_for_producer();
    for (int j = 0; j < G; ++j) {
      const int group = blockIdx.x + j * gridDim.x;
      if (group >= groups) break;
      const bool more = group + gridDim.x < groups && j + 1 < G;
      if (more) {
        point_rows(group + gridDim.x);
        load(tid, next);
      }
      use(tid, cur);
      if (j > 0) __syncthreads();  // the group before has read its sums out of finish_block's buffer
      finish_block<T, MM, R, false, Epi, false>(acc, unused, a.K, 0.f, a.o, inv_freq, group);
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int m = 0; m < MM; ++m) acc[r][m] = 0.f;
      cur = next;
    }
  }
}

// Q4_0X8 with one row of x, rows of at most one quant block per thread and many rows (as 7B-shape gate/up
// have) takes blocks of four row groups of 4 rows, each group's loads issued before the group before is used.
// Measured on an H200: 1x4096x11008 0.491 / 0.491 of copy against 0.473 / 0.478 for one group of 8 rows,
// 7B-shape Q4_0 decode 651.5 / 652.1 against 646.1 / 647.6 tok/s (the same greedy tokens), 0.5B-shape
// 1500.9 / 1498.0 against 1504.9 / 1499.3; with fewer rows (the q/k/v, output and down projections) fewer,
// longer blocks lost (1x3584x4608 0.285 against 0.325 in a probe of the same scheme).
bool four_groups_of_four(int K, int rows_of_w) {
  return K / kXBlock <= gemv_detail::kBlockThreads && rows_of_w >= 8192;
}

// With one row of x, rows longer than one step of loads take half-size steps with the next one in flight
// (Ahead), where the unroll can be halved (Q4_0X8 below 8 rows per block). Measured on an H200: Q4_0X8
// 1x11008x4096 0.49-0.50 of copy against 0.45, 7B-shape Q4_0 decode 645.3 / 646.9 against 640.8 / 640.2
// tok/s. Q8_0X8 (one vector pair per step and row already) kept its speed with a full second step in flight
// (7B-shape decode 410.6 / 406.5 against 409.6 / 409.8), and blocks of half as many rows, each with its own
// half-size steps ahead, lost (Q4_0 623.0 / 623.8, Q8_0 399.1 / 399.8).
template <int QB, class T, int MM, int R, gemv_detail::Epilogue Epi>
void launch_grouped_rows(const GroupedArgs<T>& a, int rows_of_w, cudaStream_t s) {
  constexpr int U = kGroupedUnroll<QB, R>;
  const auto grid = static_cast<unsigned>((rows_of_w + R - 1) / R);
  if constexpr (QB == 16 && MM == 1 && Epi != gemv_detail::Epilogue::RopeKv) {
    if (four_groups_of_four(a.K, rows_of_w)) {
      constexpr int kRows = 4, kGroups = 4;
      const auto groups = static_cast<unsigned>((rows_of_w + kRows - 1) / kRows);
      return launch_dependent(gemv_grouped_kernel<QB, T, MM, kRows, Epi, 1, false, kGroups>,
                              (groups + kGroups - 1) / kGroups, gemv_detail::kBlockThreads, 0, s, a);
    }
  }
  if constexpr (QB == 16 && MM == 1 && U >= 2) {
    if (a.K / kXBlock > gemv_detail::kBlockThreads * U)
      return launch_dependent(gemv_grouped_kernel<QB, T, MM, R, Epi, U / 2, true>, grid,
                              gemv_detail::kBlockThreads, 0, s, a);
  }
  launch_dependent(gemv_grouped_kernel<QB, T, MM, R, Epi>, grid, gemv_detail::kBlockThreads, 0, s, a);
}

// Weight rows per block as the dense GEMV picks them (one row of x: by the row's length; SwiGLU and RoPE pair
// rows, so never a single one).
template <int QB, class T, int MM, gemv_detail::Epilogue Epi>
void launch_grouped_epi(const GroupedArgs<T>& a, int rows_of_w, cudaStream_t s) {
  using gemv_detail::Epilogue;
  constexpr int kOne = Epi == Epilogue::SwiGLU || Epi == Epilogue::RopeKv ? 2 : 1;
  if constexpr (MM == 1) {
    switch (gemv_detail::single_row_block_rows(int64_t{a.K} / kXBlock * (QB / 16), rows_of_w)) {
      case 8: return launch_grouped_rows<QB, T, MM, 8, Epi>(a, rows_of_w, s);
      case 4: return launch_grouped_rows<QB, T, MM, 4, Epi>(a, rows_of_w, s);
      case 1: return launch_grouped_rows<QB, T, MM, kOne, Epi>(a, rows_of_w, s);
      default: return launch_grouped_rows<QB, T, MM, 2, Epi>(a, rows_of_w, s);
    }
  } else {
    // From 3 rows of x on, Q4_0X8 shares each x load among 8 weight rows (8x4096x11008: 25.1 against 27.4
    // us); Q8_0X8, with twice the weight registers, keeps 4 (27.2 against 29.6 us).
    constexpr int kRows = MM == 2 ? 2 : QB == 16 ? 8 : 4;
    launch_grouped_rows<QB, T, MM, kRows, Epi>(a, rows_of_w, s);
  }
}

template <int QB, class T, int MM>
void launch_grouped(const uint8_t* w, int64_t row_bytes, const int8_t* xq, const float2* xs, int Kp, int M,
                    int K, int N, const float* bias, T* out, LinearEpilogue e, const RopeKvEpilogue& rk,
                    cudaStream_t s) {
  using gemv_detail::Epilogue;
  const int rows_of_w = e == LinearEpilogue::SwiGLU ? 2 * N : N;
  const GroupedArgs<T> a{w, row_bytes, xq, xs, Kp, K, {M, rows_of_w, bias, out, rk}};
  if (rk.q_out) return launch_grouped_epi<QB, T, MM, Epilogue::RopeKv>(a, rows_of_w, s);
  switch (e) {
    case LinearEpilogue::Store: return launch_grouped_epi<QB, T, MM, Epilogue::Store>(a, rows_of_w, s);
    case LinearEpilogue::Accumulate:
      return launch_grouped_epi<QB, T, MM, Epilogue::Accumulate>(a, rows_of_w, s);
    case LinearEpilogue::SwiGLU: return launch_grouped_epi<QB, T, MM, Epilogue::SwiGLU>(a, rows_of_w, s);
  }
}

// N counts the outputs: under SwiGLU w holds 2N rows; under RoPE (rk.q_out set) N is w's row count.
template <class T, int MM>
void launch(DType wt, const uint8_t* w, int64_t row_bytes, int64_t data_bytes, const int8_t* xq,
            const float2* xs, int Kp, int M, int K, int N, const float* bias, T* out, LinearEpilogue e,
            const RopeKvEpilogue& rk, cudaStream_t s) {
  if (wt == DType::Q4_0X8)
    return launch_grouped<16, T, MM>(w, row_bytes, xq, xs, Kp, M, K, N, bias, out, e, rk, s);
  if (wt == DType::Q8_0X8)
    return launch_grouped<32, T, MM>(w, row_bytes, xq, xs, Kp, M, K, N, bias, out, e, rk, s);
  // Rows of whole 16-byte vectors per unit, 32 of them within the 32-bit offsets of one block's copies.
  const bool whole =
      K % kUnitElems == 0 && aligned16(w) && row_bytes % 16 == 0 && row_bytes < (int64_t{1} << 26);
  // Measured on an H200: against one row of x the staged kernel streams a wide W as fast or faster (Q8_0
  // 0.53 against 0.44 of the copy bandwidth at 4096 x 11008, Q4_0 0.36 against 0.34); more rows of x, whose
  // products share each decoded weight (2-2.3x at 8 rows), and narrow W (4-14%) favour the rows kernel.
  // SwiGLU and RoPE pair rows apart, which only the staged kernel's row groups do.
  const bool rows = whole && (M > 1 || N <= 1024) && e != LinearEpilogue::SwiGLU && !rk.q_out;
#define MTL_ROWS(U) launch_rows<U, T, MM>(w, row_bytes, K / kUnitElems, xq, xs, Kp, M, N, bias, out, e, s)
  if (rows) {
    switch (wt) {
      case DType::Q8_0: MTL_ROWS(RowsQ8_0); return;
      case DType::Q4_0: MTL_ROWS(RowsQ4_0); return;
      case DType::Q4_K: MTL_ROWS(RowsQ4_K); return;
      default: break;
    }
  }
#undef MTL_ROWS
#define MTL_INT8(Q) launch_q<Q, T, MM>(w, row_bytes, data_bytes, xq, xs, Kp, M, K, N, bias, out, e, rk, s)
  switch (wt) {
    case DType::Q8_0: MTL_INT8(Q8_0); break;
    case DType::Q4_0: MTL_INT8(Q4_0); break;
    case DType::Q4_K: MTL_INT8(Q4_K); break;
    case DType::Q6_K: MTL_INT8(Q6_K); break;
    default: fail(ErrorCode::Internal, "linear: no integer GEMV for ", name(wt));
  }
#undef MTL_INT8
}

template <class T>
void gemv_typed(const Tensor& x, const Tensor& w, int64_t row_bytes, const float* bias, const GemvFusion& f,
                const Tensor& out, int8_t* xq, float2* xs, int Kp, cudaStream_t s) {
  const int M = static_cast<int>(x.dim(0)), K = static_cast<int>(x.dim(1));
  const int N = static_cast<int>(f.rope_kv ? w.dim(0) : out.dim(1));
  const RopeKvEpilogue rk = f.rope_kv ? *f.rope_kv : RopeKvEpilogue{};
  // Under the RMSNorm one block takes the whole row where it can (K up to 8192), so that no thread reads x
  // twice.
  const unsigned threads = f.rms_norm ? std::min(1024u, static_cast<unsigned>((Kp / 8 + 31) / 32 * 32)) : 128;
  const dim3 qgrid(static_cast<unsigned>((Kp / 8 + threads - 1) / threads), static_cast<unsigned>(M));
  // Rows of x (and the gain) on 16-byte boundaries load a thread's 8 elements in one or two instructions
  // rather than eight: this kernel's latency is on every quantized product's path (7B-shape decode on an
  // H200: Q4_0 627.6-628.4 against 612.0-613.1 tok/s, Q8_0 405.2-405.7 against 397.4-398.8).
  const bool vec = rows_aligned16(x) && (!f.norm || aligned16(f.norm));
  // A programmatic dependent of the kernel before, so that its launch, and through its early trigger the
  // GEMV's first weight loads, overlap that kernel's tail.
  launch_dependent(f.rms_norm ? quantize_x_kernel<T, true> : quantize_x_kernel<T, false>, qgrid, threads, 0,
                   s, x.data_as<T>(), x.stride(0), K, Kp, f.norm, f.eps, xq, xs, vec, f.static_weights);
  const LinearEpilogue e = f.epilogue;
  const auto* pw = static_cast<const uint8_t*>(w.data());
  const int64_t data = storage_bytes(w.dtype(), K);
  T* po = out.defined() ? out.data_as<T>() : nullptr;
  if (M == 1)
    launch<T, 1>(w.dtype(), pw, row_bytes, data, xq, xs, Kp, M, K, N, bias, po, e, rk, s);
  else if (M == 2)
    launch<T, 2>(w.dtype(), pw, row_bytes, data, xq, xs, Kp, M, K, N, bias, po, e, rk, s);
  else if (M <= 4)
    launch<T, 4>(w.dtype(), pw, row_bytes, data, xq, xs, Kp, M, K, N, bias, po, e, rk, s);
  else
    launch<T, 8>(w.dtype(), pw, row_bytes, data, xq, xs, Kp, M, K, N, bias, po, e, rk, s);
}

}  // namespace

bool gemv_int8_supported(DType type) {
  return type == DType::Q8_0 || type == DType::Q4_0 || type == DType::Q4_K || type == DType::Q6_K ||
         type == DType::Q4_0X8 || type == DType::Q8_0X8;
}

void gemv_int8(const Tensor& x, const Tensor& w, int64_t row_bytes, const float* bias, const GemvFusion& f,
               const Tensor& out, cudaStream_t s) {
  const int64_t m = x.dim(0), k = x.dim(1);
  const int64_t kp = (k + kXPad - 1) / kXPad * kXPad;
  MemoryPool& pool = x.context()->pool();
  const MemoryPool::Mark mark = pool.mark();
  // Quants first (rows of kp bytes), then the f32 pairs (rows of kp / 32 pairs, 16-byte multiples).
  const int64_t qbytes = (m * kp + 255) / 256 * 256;
  Tensor scratch = Tensor::empty(x.context(), {qbytes + m * (kp / kXBlock) * 8}, DType::U8, Storage::Pool);
  auto* xq = static_cast<int8_t*>(scratch.data());
  auto* xs = reinterpret_cast<float2*>(static_cast<uint8_t*>(scratch.data()) + qbytes);
  const int Kp = static_cast<int>(kp);
  switch (x.dtype()) {
    case DType::F32: gemv_typed<float>(x, w, row_bytes, bias, f, out, xq, xs, Kp, s); break;
    case DType::F16: gemv_typed<f16>(x, w, row_bytes, bias, f, out, xq, xs, Kp, s); break;
    case DType::BF16: gemv_typed<bf16>(x, w, row_bytes, bias, f, out, xq, xs, Kp, s); break;
    default: fail(ErrorCode::NotSupported, "linear: dtype ", name(x.dtype()));
  }
  pool.release(mark);  // stream order makes the scratch reusable by later work on this stream
}

}  // namespace metallic::cuda
