// Decode-time GEMV: out[m, n] = sum_k x[m, k] W[n, k] + bias[n] for M <= 8. It is bound by reading W once,
// so everything serves keeping many 16-byte weight loads in flight on every SM:
// - each warp owns kRows output rows; all loads of a step for every row are issued before any is used, with
//   L1-bypassing non-coherent loads (W is read once), while x (small, reused by every warp) goes through L1;
// - dense weights: lanes take consecutive 16-byte chunks (8 elements) of each row, kUnroll chunks per step;
// - block types: 34- and 18-byte blocks (and 210-byte Q6_K super-blocks) do not line up with 16-byte loads,
//   so a warp copies a tile of each row (whole blocks) into shared memory with coalesced aligned 16-byte
//   loads, shifted so the tile starts 16-byte aligned there, then every lane decodes whole units from shared
//   memory with word reads. The next tile's loads are in flight while the current tile is decoded;
// - quants become floats exactly as 2^23 + q (a byte permute and one add, no slow int-to-float conversion),
//   block scales multiply a sum of 8 products once; x keeps its own precision and sums are f32.
#include <cuda_fp16.h>

#include <algorithm>
#include <type_traits>

#include "backend/cuda/check.h"
#include "backend/cuda/gemv.h"
#include "metallic/core/context.h"
#include "metallic/core/half.h"
#include "metallic/core/memory_pool.h"
#include "metallic/model/quant_blocks.h"
#include "metallic/ops/copy.h"

namespace metallic::cuda {
namespace {

constexpr int kWarps = 4;  // warps per block: small blocks keep the tail of the grid short
constexpr int kRows = 2;   // output rows per warp: more loads in flight, x reads shared by the rows

__device__ __forceinline__ uint4 ld_stream(const void* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

__device__ __forceinline__ float half_f(uint32_t bits) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
}

// Byte i of w as the float 2^23 + byte (exact).
__device__ __forceinline__ float byte_f(uint32_t w, int i) {
  return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7540u | i));
}
constexpr float kTwo23 = 8388608.f;

// ---- 8 consecutive elements of a dense type from 16-byte vectors ----------------------------------------

template <class E>
constexpr int kVecs = sizeof(E) == 4 ? 2 : 1;  // 16-byte vectors per 8 elements

template <class E>
__device__ __forceinline__ void unpack8(const uint4* v, float (&f)[8]) {
  if constexpr (sizeof(E) == 4) {
    const uint32_t w[8] = {v[0].x, v[0].y, v[0].z, v[0].w, v[1].x, v[1].y, v[1].z, v[1].w};
#pragma unroll
    for (int i = 0; i < 8; ++i) f[i] = __uint_as_float(w[i]);
  } else {
    const uint32_t w[4] = {v[0].x, v[0].y, v[0].z, v[0].w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (std::is_same_v<E, bf16>) {
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
      } else {
        f[2 * i] = half_f(w[i] & 0xffffu);
        f[2 * i + 1] = half_f(w[i] >> 16);
      }
    }
  }
}

template <class T>
__device__ __forceinline__ void load_x8(const T* p, float (&f)[8]) {
  uint4 v[kVecs<T>];
#pragma unroll
  for (int i = 0; i < kVecs<T>; ++i) v[i] = __ldg(reinterpret_cast<const uint4*>(p) + i);
  unpack8<T>(v, f);
}

__device__ __forceinline__ float dot8(const float (&a)[8], const float (&b)[8]) {
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) s = fmaf(a[i], b[i], s);
  return s;
}

// Reduces every lane's partial sums and writes the warp's rows.
template <int MM, class T>
__device__ __forceinline__ void finish(float (&acc)[kRows][MM], int row0, int M, int N, const float* bias,
                                       T* out) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < MM; ++m) {
      float v = acc[r][m];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      const int n = row0 + r;
      if (lane == (r * MM + m) % 32 && n < N && m < M)
        out[static_cast<int64_t>(m) * N + n] = T(v + (bias ? bias[n] : 0.f));
    }
}

// ---- dense weights (F32, F16, BF16), 16-byte aligned rows ------------------------------------------------

template <class E, class T, int MM>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_dense(const uint8_t* __restrict__ w, int64_t row_bytes, const T* __restrict__ x, int64_t ldx, int M,
               int K, int N, const float* __restrict__ bias, T* __restrict__ out) {
  constexpr int V = kVecs<E>, U = V == 1 ? 4 : 2;  // chunks per row and step: 4 (f32: 2) 16-byte vectors
  const int lane = threadIdx.x & 31;
  const int row0 = (blockIdx.x * kWarps + (threadIdx.x >> 5)) * kRows;
  const uint4* rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r)  // rows past N re-read the last row; their sums are dropped
    rows[r] = reinterpret_cast<const uint4*>(w + static_cast<int64_t>(min(row0 + r, N - 1)) * row_bytes);
  const int chunks = K / 8;
  float acc[kRows][MM] = {};
  for (int c0 = lane; c0 < chunks; c0 += 32 * U) {
    uint4 wv[U][kRows][V];
#pragma unroll
    for (int j = 0; j < U; ++j)
#pragma unroll
      for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int v = 0; v < V; ++v)
          wv[j][r][v] = c0 + 32 * j < chunks ? ld_stream(rows[r] + static_cast<int64_t>(c0 + 32 * j) * V + v)
                                             : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int j = 0; j < U; ++j) {
      const int c = c0 + 32 * j;
      if (c >= chunks) break;
      float wf[kRows][8];
#pragma unroll
      for (int r = 0; r < kRows; ++r) unpack8<E>(wv[j][r], wf[r]);
#pragma unroll
      for (int m = 0; m < MM; ++m) {
        float xv[8];
        load_x8(x + min(m, M - 1) * ldx + 8 * c, xv);
#pragma unroll
        for (int r = 0; r < kRows; ++r) acc[r][m] += dot8(wf[r], xv);
      }
    }
  }
  finish<MM>(acc, row0, M, N, bias, out);
}

// ---- block types: unit decoders reading a 16-byte aligned tile in shared memory ---------------------------
// A decoder Q names: kTileElems/kTileBytes (a tile: whole blocks, a multiple of 16 bytes), kUnitsPerLane
// (the tile has 32 * kUnitsPerLane units), x_off(u, p) (first of the 8 consecutive elements of piece p of
// unit u, relative to the tile), prep(tile, u) -> State, piece(State, p, q[8]) (the quants as floats),
// combine(State, p, sum q*x, sum x) (the piece's contribution), kPieces, kPartial (K may end inside a unit),
// kSumX (combine needs sum x).

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

struct Q8_0 {  // unit: two blocks (64 elements, 68 bytes, 4-byte aligned in the tile)
  static constexpr int kTileElems = 2048, kTileBytes = 2176, kUnitsPerLane = 1, kPieces = 8;
  static constexpr bool kPartial = true, kSumX = false;
  struct State {
    uint32_t wd[17];  // the unit's bytes, quants biased to unsigned
    float d0, d1;
  };
  __device__ static int x_off(int u, int p) { return 64 * u + 8 * p; }
  __device__ static State prep(const uint8_t* tile, int u) {
    State s;
    const uint8_t* b = tile + 68 * u;
#pragma unroll
    for (int i = 0; i < 17; ++i) s.wd[i] = ld_sh32(b + 4 * i);
    s.d0 = half_f(s.wd[0] & 0xffffu);
    s.d1 = half_f(s.wd[8] >> 16);
#pragma unroll
    for (int i = 0; i < 17; ++i) s.wd[i] ^= 0x80808080u;
    return s;
  }
  __device__ static void piece(const State& s, int p, float (&q)[8]) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int o = 34 * (p >> 2) + 2 + 8 * (p & 3) + i;
      q[i] = byte_f(s.wd[o >> 2], o & 3) - (kTwo23 + 128.f);
    }
  }
  __device__ static float combine(const State& s, int p, float sq, float) {
    return (p < 4 ? s.d0 : s.d1) * sq;
  }
};

struct Q4_0 {  // unit: two blocks (64 elements, 36 bytes); pieces 0-1 / 2-3 are a block's low / high nibbles
  static constexpr int kTileElems = 4096, kTileBytes = 2304, kUnitsPerLane = 2, kPieces = 8;
  static constexpr bool kPartial = true, kSumX = false;
  struct State {
    uint32_t wd[9];
    float d0, d1;
  };
  __device__ static int x_off(int u, int p) { return 64 * u + 8 * p; }
  __device__ static State prep(const uint8_t* tile, int u) {
    State s;
    const uint8_t* b = tile + 36 * u;
#pragma unroll
    for (int i = 0; i < 9; ++i) s.wd[i] = ld_sh32(b + 4 * i);
    s.d0 = half_f(s.wd[0] & 0xffffu);
    s.d1 = half_f(s.wd[4] >> 16);
    return s;
  }
  __device__ static void piece(const State& s, int p, float (&q)[8]) {
    const int blk = p >> 2, j = p & 3, shift = 4 * (j >> 1);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int o = 18 * blk + 2 + 8 * (j & 1) + i;
      q[i] = byte_f((s.wd[o >> 2] >> shift) & 0x0f0f0f0fu, o & 3) - (kTwo23 + 8.f);
    }
  }
  __device__ static float combine(const State& s, int p, float sq, float) {
    return (p < 4 ? s.d0 : s.d1) * sq;
  }
};

struct Q4_K {  // unit: 32 quant bytes of a super-block = groups 2j (low nibbles) and 2j + 1 (high nibbles)
  static constexpr int kTileElems = 4096, kTileBytes = 2304, kUnitsPerLane = 2, kPieces = 8;
  static constexpr bool kPartial = false, kSumX = true;
  struct State {
    uint32_t wd[8];
    float d1, m1, d2, m2;
  };
  __device__ static int x_off(int u, int p) { return 256 * (u >> 2) + 64 * (u & 3) + 8 * p; }
  __device__ static State prep(const uint8_t* tile, int u) {
    State s;
    const uint8_t* b = tile + 144 * (u >> 2);
    const int j = u & 3;
    const uint4 q0 = *reinterpret_cast<const uint4*>(b + 16 + 32 * j),
                q1 = *reinterpret_cast<const uint4*>(b + 32 + 32 * j);
    s.wd[0] = q0.x, s.wd[1] = q0.y, s.wd[2] = q0.z, s.wd[3] = q0.w;
    s.wd[4] = q1.x, s.wd[5] = q1.y, s.wd[6] = q1.z, s.wd[7] = q1.w;
    const uint32_t h = ld_sh32(b);
    const float d = half_f(h & 0xffffu), dmin = half_f(h >> 16);
    uint8_t sc, m;
    quant::get_scale_min_k4(2 * j, b + 4, sc, m);
    s.d1 = d * sc, s.m1 = dmin * m;
    quant::get_scale_min_k4(2 * j + 1, b + 4, sc, m);
    s.d2 = d * sc, s.m2 = dmin * m;
    return s;
  }
  __device__ static void piece(const State& s, int p, float (&q)[8]) {
#pragma unroll
    for (int i = 0; i < 8; ++i)
      q[i] = byte_f((s.wd[2 * (p & 3) + (i >> 2)] >> (4 * (p >> 2))) & 0x0f0f0f0fu, i & 3) - kTwo23;
  }
  __device__ static float combine(const State& s, int p, float sq, float sx) {
    return p < 4 ? s.d1 * sq - s.m1 * sx : s.d2 * sq - s.m2 * sx;
  }
};

struct Q6_K {  // unit (half h, columns 8c..8c+7): the 4 runs of 8 elements 128h + 8c + 32p, p = 0..3
  static constexpr int kTileElems = 2048, kTileBytes = 1680, kUnitsPerLane = 2, kPieces = 4;
  static constexpr bool kPartial = false, kSumX = false;
  struct State {
    uint32_t ql[4], qh[2];  // ql[0..1]: bytes 8c.. of the half's low 32, ql[2..3]: of its high 32
    float s[4];
  };
  __device__ static int x_off(int u, int p) {
    return 256 * (u >> 3) + 128 * ((u >> 2) & 1) + 8 * (u & 3) + 32 * p;
  }
  __device__ static State prep(const uint8_t* tile, int u) {
    State st;
    const uint8_t* b = tile + 210 * (u >> 3);  // only 2-byte aligned
    const int h = (u >> 2) & 1, c = u & 3;
    const uint8_t* ql = b + 64 * h + 8 * c;
    st.ql[0] = ld_sh32_a2(ql), st.ql[1] = ld_sh32_a2(ql + 4), st.ql[2] = ld_sh32_a2(ql + 32),
    st.ql[3] = ld_sh32_a2(ql + 36);
    st.qh[0] = ld_sh32_a2(b + 128 + 32 * h + 8 * c), st.qh[1] = ld_sh32_a2(b + 132 + 32 * h + 8 * c);
    const float d = half_f(ld_sh16(b + 208));
    const auto* sc = reinterpret_cast<const int8_t*>(b + 192 + 8 * h + (c >> 1));
#pragma unroll
    for (int p = 0; p < 4; ++p) st.s[p] = d * static_cast<float>(sc[2 * p]);
    return st;
  }
  __device__ static void piece(const State& s, int p, float (&q)[8]) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const uint32_t lo = (s.ql[2 * (p & 1) + (i >> 2)] >> (4 * (p >> 1))) & 0x0f0f0f0fu;
      const uint32_t hi = ((s.qh[i >> 2] >> (2 * p)) & 0x03030303u) << 4;
      q[i] = byte_f(lo | hi, i & 3) - (kTwo23 + 32.f);
    }
  }
  __device__ static float combine(const State& s, int p, float sq, float) { return s.s[p] * sq; }
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

template <class Q, class T, int MM>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_blocks(const uint8_t* __restrict__ w, int64_t row_bytes, int64_t data_bytes, const T* __restrict__ x,
                int64_t ldx, int M, int K, int N, const float* __restrict__ bias, T* __restrict__ out) {
  constexpr int kVecsPerTile = Q::kTileBytes / 16 + 1;  // one more when the row is not 16-byte aligned
  constexpr int kLoads = (kVecsPerTile + 31) / 32;
  constexpr int kBuf = Q::kTileBytes + 32;
  __shared__ __align__(16) uint8_t smem[kWarps][kRows][kBuf];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int row0 = (blockIdx.x * kWarps + warp) * kRows;
  // Aligned 16-byte vectors covering each row: every one holds at least one byte of the row, so none
  // reaches past the allocation.
  const uint8_t* rows[kRows];
  int mis[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const uint8_t* p = w + static_cast<int64_t>(min(row0 + r, N - 1)) * row_bytes;
    mis[r] = static_cast<int>(reinterpret_cast<uintptr_t>(p) & 15);
    rows[r] = p - mis[r];
  }
  uint4 buf[kRows][kLoads];
  auto load = [&](int t) {
    const int64_t off = static_cast<int64_t>(t) * Q::kTileBytes;
    const int bytes = static_cast<int>(min(static_cast<int64_t>(Q::kTileBytes), data_bytes - off));
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int nv = (mis[r] + bytes + 15) >> 4;
#pragma unroll
      for (int i = 0; i < kLoads; ++i) {
        const int v = lane + 32 * i;
        buf[r][i] = v < nv ? ld_stream(rows[r] + off + 16 * v) : make_uint4(0, 0, 0, 0);
      }
    }
  };
  const int tiles = (K + Q::kTileElems - 1) / Q::kTileElems;
  float acc[kRows][MM] = {};
  load(0);
  for (int t = 0; t < tiles; ++t) {
    __syncwarp();
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int i = 0; i < kLoads; ++i)
        if (lane + 32 * i < kVecsPerTile) store_shifted(smem[warp][r] + 16, lane + 32 * i, mis[r], buf[r][i]);
    __syncwarp();
    if (t + 1 < tiles) load(t + 1);
    const int e0 = t * Q::kTileElems;
#pragma unroll
    for (int j = 0; j < Q::kUnitsPerLane; ++j) {
      const int u = lane + 32 * j;
      if (e0 + Q::x_off(u, 0) >= K) break;
      typename Q::State st[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) st[r] = Q::prep(smem[warp][r] + 16, u);
#pragma unroll
      for (int p = 0; p < Q::kPieces; ++p) {
        const int e = e0 + Q::x_off(u, p);
        if (Q::kPartial && e >= K) break;
        float q[kRows][8];
#pragma unroll
        for (int r = 0; r < kRows; ++r) Q::piece(st[r], p, q[r]);
#pragma unroll
        for (int m = 0; m < MM; ++m) {
          float xv[8];
          load_x8(x + min(m, M - 1) * ldx + e, xv);
          float sx = 0.f;
          if constexpr (Q::kSumX) {
#pragma unroll
            for (int i = 0; i < 8; ++i) sx += xv[i];
          }
#pragma unroll
          for (int r = 0; r < kRows; ++r) acc[r][m] += Q::combine(st[r], p, dot8(q[r], xv), sx);
        }
      }
    }
  }
  finish<MM>(acc, row0, M, N, bias, out);
}

template <class T, int MM>
void launch(const Tensor& x, const Tensor& w, int64_t row_bytes, const float* bias, const Tensor& out,
            cudaStream_t s) {
  const int M = static_cast<int>(x.dim(0)), K = static_cast<int>(x.dim(1)), N = static_cast<int>(out.dim(1));
  const unsigned grid = static_cast<unsigned>((N + kWarps * kRows - 1) / (kWarps * kRows));
  const auto* pw = static_cast<const uint8_t*>(w.data());
  const T* px = x.data_as<T>();
  T* po = out.data_as<T>();
  const int64_t ldx = x.stride(0), data = storage_bytes(w.dtype(), K);
#define MTL_DENSE(E) \
  gemv_dense<E, T, MM><<<grid, kWarps * 32, 0, s>>>(pw, row_bytes, px, ldx, M, K, N, bias, po)
#define MTL_BLOCKS(Q) \
  gemv_blocks<Q, T, MM><<<grid, kWarps * 32, 0, s>>>(pw, row_bytes, data, px, ldx, M, K, N, bias, po)
  switch (w.dtype()) {
    case DType::F32: MTL_DENSE(float); break;
    case DType::F16: MTL_DENSE(f16); break;
    case DType::BF16: MTL_DENSE(bf16); break;
    case DType::Q8_0: MTL_BLOCKS(Q8_0); break;
    case DType::Q4_0: MTL_BLOCKS(Q4_0); break;
    case DType::Q4_K: MTL_BLOCKS(Q4_K); break;
    case DType::Q6_K: MTL_BLOCKS(Q6_K); break;
    default: fail(ErrorCode::Internal, "linear: no GEMV for ", name(w.dtype()));
  }
#undef MTL_DENSE
#undef MTL_BLOCKS
  MTL_CUDA_CHECK_LAUNCH("linear: gemv");
}

template <class T>
void gemv_typed(const Tensor& x, const Tensor& w, int64_t row_bytes, const float* bias, const Tensor& out,
                cudaStream_t s) {
  const int64_t m = x.dim(0);
  if (m == 1)
    launch<T, 1>(x, w, row_bytes, bias, out, s);
  else if (m == 2)
    launch<T, 2>(x, w, row_bytes, bias, out, s);
  else if (m <= 4)
    launch<T, 4>(x, w, row_bytes, bias, out, s);
  else
    launch<T, 8>(x, w, row_bytes, bias, out, s);
}

}  // namespace

bool gemv_supported(const Tensor& w, int64_t row_bytes) {
  const auto addr = reinterpret_cast<uintptr_t>(w.data());
  switch (w.dtype()) {
    case DType::F32:
    case DType::F16:
    case DType::BF16: return w.stride(1) == 1 && w.dim(1) % 8 == 0 && addr % 16 == 0 && row_bytes % 16 == 0;
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_K:
    case DType::Q6_K: return addr % 2 == 0 && row_bytes % 2 == 0;
    default: return false;
  }
}

void gemv(const Tensor& x, const Tensor& w, int64_t row_bytes, const float* bias, const Tensor& out,
          cudaStream_t s) {
  // x is read in 16-byte vectors (K is a multiple of 8 here); an unaligned view goes through an aligned copy.
  const bool aligned =
      reinterpret_cast<uintptr_t>(x.data()) % 16 == 0 && (x.stride(0) * element_size(x.dtype())) % 16 == 0;
  MemoryPool& pool = out.context()->pool();
  const MemoryPool::Mark mark = pool.mark();
  Tensor xa = x;
  if (!aligned) {
    xa = Tensor::empty(out.context(), x.shape(), x.dtype(), Storage::Pool);
    metallic::copy(x, xa);
  }
  switch (out.dtype()) {
    case DType::F32: gemv_typed<float>(xa, w, row_bytes, bias, out, s); break;
    case DType::F16: gemv_typed<f16>(xa, w, row_bytes, bias, out, s); break;
    case DType::BF16: gemv_typed<bf16>(xa, w, row_bytes, bias, out, s); break;
    default: fail(ErrorCode::NotSupported, "linear: dtype ", name(out.dtype()));
  }
  pool.release(mark);  // stream order makes the copy reusable by later work on this stream
}

}  // namespace metallic::cuda
