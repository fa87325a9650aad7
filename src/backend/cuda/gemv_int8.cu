// Decode-time GEMV for block-quantized weights on integer dot products. Decoding every quant to a float and
// multiplying in f32 costs several instructions per weight byte, more than the memory system leaves time
// for; instead:
// - a first kernel rounds the rows of x to 8 bits in blocks of 32 (an f32 scale d and d * sum of the quants
//   per block, the latter for the weight types with an offset or a min), into pool scratch;
// - the GEMV multiplies four int8 pairs per __dp4a against the weight quants as they are stored (nibbles
//   masked, Q6_K's bias subtracted bytewise) and applies the block scales once per 32 (Q6_K: 8) products;
// - weights stream in tiles of whole blocks: a warp works on kRows rows at a time and copies each tile into
//   shared memory with coalesced, aligned 16-byte loads (the 34-, 18- and 210-byte blocks do not line up
//   with them), the next tile in flight while the current one is used;
// - the GEMV is launched as a programmatic dependent of the quantizing kernel: it starts streaming its first
//   weight tile while x is still being quantized and waits for x only before using it.
#include <cuda_fp16.h>

#include <algorithm>

#include "backend/cuda/check.h"
#include "backend/cuda/gemv_common.cuh"
#include "backend/cuda/gemv_int8.h"
#include "backend/cuda/pdl.cuh"
#include "backend/scalar.h"
#include "metallic/core/context.h"
#include "metallic/core/half.h"
#include "metallic/core/memory_pool.h"
#include "metallic/model/quant_blocks.h"

namespace metallic::cuda {
namespace {

using gemv_detail::half_f;
using gemv_detail::ld_stream;

constexpr int kWarps = 4;  // warps per block
constexpr int kRows = 2;   // weight rows per warp: x loads are shared by the rows (one row measured slower)
constexpr int kXBlock = 32;

// Rows of quantized x are padded to a multiple of this many elements (zeros), so a two-block unit cut short
// by K still reads x inside its row.
constexpr int64_t kXPad = 64;

// ---- x to 8 bits ---------------------------------------------------------------------------------------

// One thread per 8 consecutive elements, 4 threads per block of 32. Elements in [K, Kp) are zeros.
template <class T>
__global__ void quantize_x_kernel(const T* __restrict__ x, int64_t ldx, int K, int Kp,
                                  int8_t* __restrict__ xq, float2* __restrict__ xs) {
  allow_dependents();  // the GEMV may start streaming weights now
  const int m = blockIdx.y;
  const int e = 8 * (blockIdx.x * blockDim.x + threadIdx.x);
  float v[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = e + i < K ? backend::load(x[m * ldx + e + i]) : 0.f;
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
    const int4 v = __ldg(reinterpret_cast<const int4*>(xq) + i);
    x.q[4 * i] = v.x, x.q[4 * i + 1] = v.y, x.q[4 * i + 2] = v.z, x.q[4 * i + 3] = v.w;
  }
  x.s = __ldg(reinterpret_cast<const float4*>(xs));
  return x;
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
    const uint8_t* b = tile + 68 * u;
    uint32_t wd[17];
#pragma unroll
    for (int i = 0; i < 17; ++i) wd[i] = ld_sh32(b + 4 * i);
    W w;
    w.d0 = half_f(wd[0] & 0xffffu);
    w.d1 = half_f(wd[8] >> 16);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      w.q[i] = static_cast<int>(__funnelshift_r(wd[i], wd[i + 1], 16));  // block 0's quants start at byte 2
      w.q[8 + i] = static_cast<int>(wd[9 + i]);                          // block 1's at byte 36
    }
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
    const uint8_t* b = tile + 36 * u;
    uint32_t wd[9];
#pragma unroll
    for (int i = 0; i < 9; ++i) wd[i] = ld_sh32(b + 4 * i);
    W w;
    w.d0 = half_f(wd[0] & 0xffffu);
    w.d1 = half_f(wd[4] >> 16);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      w.q[i] = static_cast<int>(__funnelshift_r(wd[i], wd[i + 1], 16));
      w.q[4 + i] = static_cast<int>(wd[5 + i]);
    }
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
      x.q[p] = __ldg(reinterpret_cast<const int2*>(xq + 32 * p));
      x.d[p] = __ldg(&xs[p].x);
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

// Sums the lanes' partial dot products of row group g, writes them and clears acc.
template <class T, int MM, int R>
__device__ __forceinline__ void write_group(float (&acc)[R][MM], int g, int lane, int M, int N,
                                            const float* __restrict__ bias, T* __restrict__ out) {
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < MM; ++m) {
      float v = acc[r][m];
      acc[r][m] = 0.f;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      const int n = g * R + r;
      if (lane == (r * MM + m) % 32 && n < N && m < M)
        out[static_cast<int64_t>(m) * N + n] = T(v + (bias ? bias[n] : 0.f));
    }
}

// Each warp streams through the row groups gw, gw + W, ... (W warps in the grid, which fills the GPU once)
// tile by tile, the next tile (of this row group or the next) in flight in registers while the current one
// is used from shared memory, so a warp keeps weight bytes in flight from its first load to its last.
template <class Q, class T, int MM, int R>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_int8_kernel(const uint8_t* __restrict__ w, int64_t row_bytes, int64_t data_bytes,
                     const int8_t* __restrict__ xq, const float2* __restrict__ xs, int Kp, int M, int K,
                     int N, const float* __restrict__ bias, T* __restrict__ out) {
  constexpr int kVecsPerTile = Q::kTileBytes / 16 + 1;  // one more when the row is not 16-byte aligned
  constexpr int kLoads = (kVecsPerTile + 31) / 32;
  constexpr int kBuf = Q::kTileBytes + 32;
  __shared__ __align__(16) uint8_t smem[kWarps][R][kBuf];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int groups = (N + R - 1) / R, stride = gridDim.x * kWarps;
  const int tiles = (K + Q::kTileElems - 1) / Q::kTileElems;
  int g = blockIdx.x * kWarps + warp;
  if (g >= groups) return;
  // Aligned 16-byte vectors covering each row: every one holds at least one byte of the row, so none
  // reaches past the allocation. `rows` and `mis` describe the group whose tile is loaded into `buf`.
  const uint8_t* rows[R];
  int mis[R];
  auto locate = [&](int group) {
#pragma unroll
    for (int r = 0; r < R; ++r) {  // rows past N re-read the last row; their sums are dropped
      const uint8_t* p = w + static_cast<int64_t>(min(group * R + r, N - 1)) * row_bytes;
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
    write_group<T, MM, R>(acc, g, lane, M, N, bias, out);
    if (next_g >= groups) break;
    g = next_g;
    t = 0;
  }
}

// Blocks of `kernel` that fit on the device at once, asked once per kernel: later calls (a captured decode
// step among them) make no runtime queries. Any grid size is correct; this one fills the GPU once.
template <class Kernel>
unsigned resident_blocks(Kernel kernel) {
  int device = 0, sms = 0, per_sm = 0;
  MTL_CUDA_CHECK(cudaGetDevice(&device));
  MTL_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  MTL_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kWarps * 32, 0));
  return static_cast<unsigned>(std::max(1, sms * per_sm));
}

template <class Q, class T, int MM>
void launch_q(const uint8_t* w, int64_t row_bytes, int64_t data_bytes, const int8_t* xq, const float2* xs,
              int Kp, int M, int K, int N, const float* bias, T* out, cudaStream_t s) {
  const unsigned blocks = static_cast<unsigned>((N + kWarps * kRows - 1) / (kWarps * kRows));
  auto kernel = gemv_int8_kernel<Q, T, MM, kRows>;
  static const unsigned resident = resident_blocks(kernel);
  launch_dependent(kernel, std::min(blocks, resident), kWarps * 32, 0, s, w, row_bytes, data_bytes, xq, xs,
                   Kp, M, K, N, bias, out);
}

template <class T, int MM>
void launch(DType wt, const uint8_t* w, int64_t row_bytes, int64_t data_bytes, const int8_t* xq,
            const float2* xs, int Kp, int M, int K, int N, const float* bias, T* out, cudaStream_t s) {
#define MTL_INT8(Q) launch_q<Q, T, MM>(w, row_bytes, data_bytes, xq, xs, Kp, M, K, N, bias, out, s)
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
void gemv_typed(const Tensor& x, const Tensor& w, int64_t row_bytes, const float* bias, const Tensor& out,
                int8_t* xq, float2* xs, int Kp, cudaStream_t s) {
  const int M = static_cast<int>(x.dim(0)), K = static_cast<int>(x.dim(1)), N = static_cast<int>(out.dim(1));
  const unsigned threads = 128;
  const dim3 qgrid(static_cast<unsigned>((Kp / 8 + threads - 1) / threads), static_cast<unsigned>(M));
  quantize_x_kernel<T><<<qgrid, threads, 0, s>>>(x.data_as<T>(), x.stride(0), K, Kp, xq, xs);
  MTL_CUDA_CHECK_LAUNCH("linear: quantize_x_kernel");
  const auto* pw = static_cast<const uint8_t*>(w.data());
  const int64_t data = storage_bytes(w.dtype(), K);
  T* po = out.data_as<T>();
  if (M == 1)
    launch<T, 1>(w.dtype(), pw, row_bytes, data, xq, xs, Kp, M, K, N, bias, po, s);
  else if (M == 2)
    launch<T, 2>(w.dtype(), pw, row_bytes, data, xq, xs, Kp, M, K, N, bias, po, s);
  else if (M <= 4)
    launch<T, 4>(w.dtype(), pw, row_bytes, data, xq, xs, Kp, M, K, N, bias, po, s);
  else
    launch<T, 8>(w.dtype(), pw, row_bytes, data, xq, xs, Kp, M, K, N, bias, po, s);
}

}  // namespace

bool gemv_int8_supported(DType type) {
  return type == DType::Q8_0 || type == DType::Q4_0 || type == DType::Q4_K || type == DType::Q6_K;
}

void gemv_int8(const Tensor& x, const Tensor& w, int64_t row_bytes, const float* bias, const Tensor& out,
               cudaStream_t s) {
  const int64_t m = x.dim(0), k = x.dim(1);
  const int64_t kp = (k + kXPad - 1) / kXPad * kXPad;
  MemoryPool& pool = out.context()->pool();
  const MemoryPool::Mark mark = pool.mark();
  // Quants first (rows of kp bytes), then the f32 pairs (rows of kp / 32 pairs, 16-byte multiples).
  const int64_t qbytes = (m * kp + 255) / 256 * 256;
  Tensor scratch = Tensor::empty(out.context(), {qbytes + m * (kp / kXBlock) * 8}, DType::U8, Storage::Pool);
  auto* xq = static_cast<int8_t*>(scratch.data());
  auto* xs = reinterpret_cast<float2*>(static_cast<uint8_t*>(scratch.data()) + qbytes);
  const int Kp = static_cast<int>(kp);
  switch (out.dtype()) {
    case DType::F32: gemv_typed<float>(x, w, row_bytes, bias, out, xq, xs, Kp, s); break;
    case DType::F16: gemv_typed<f16>(x, w, row_bytes, bias, out, xq, xs, Kp, s); break;
    case DType::BF16: gemv_typed<bf16>(x, w, row_bytes, bias, out, xq, xs, Kp, s); break;
    default: fail(ErrorCode::NotSupported, "linear: dtype ", name(out.dtype()));
  }
  pool.release(mark);  // stream order makes the scratch reusable by later work on this stream
}

}  // namespace metallic::cuda
