// Shared pieces of the CUDA kernels that work on the last dimension of [..., H] operands: the row layout
// (leading dimensions collapsed where the strides allow), 16-byte packs, and row-wide reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <array>
#include <cstdint>
#include <type_traits>

#include "backend/cuda/launch.h"
#include "backend/cuda/loads.cuh"
#include "backend/scalar.h"

namespace metallic::cuda {

/// A row kernel keeps each row in registers: tpr threads per row (a power of two in [32, kMaxRowThreads]),
/// each holding up to P packs, P kSmallPacks or the kernel's choice for long rows. Rows beyond
/// kMaxRowThreads * P packs re-read the excess.
constexpr int kSmallPacks = 4;
constexpr int kMaxRowThreads = 256;

/// Rows of N operands of one shape [..., H]: the row index -> element offset map and the last-dim strides.
template <int N>
struct RowLayout {
  int rank;  // collapsed leading dimensions
  int64_t shape[kMaxDims];
  int64_t stride[N][kMaxDims];
  int64_t col_stride[N];
  int64_t rows;
  int64_t len;

  /// Element offsets of row `r`'s first element in each operand.
  __device__ __forceinline__ void offsets(int64_t r, int64_t (&o)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) o[k] = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const int64_t idx = d == 0 ? r : r % shape[d];
      r = d == 0 ? 0 : r / shape[d];
#pragma unroll
      for (int k = 0; k < N; ++k) o[k] += idx * stride[k][d];
    }
  }
};

/// The row layout of operands of `shape`; merges leading dimensions whose strides chain in every operand.
template <int N>
RowLayout<N> make_row_layout(const Shape& shape, const std::array<const Tensor*, N>& operands) {
  RowLayout<N> l{};
  const int last = shape.rank() - 1;
  l.len = shape[last];
  l.rows = 1;
  for (int k = 0; k < N; ++k) l.col_stride[k] = operands[static_cast<size_t>(k)]->stride(last);
  for (int d = 0; d < last; ++d) {
    if (shape[d] == 1) continue;
    l.rows *= shape[d];
    bool chains = l.rank > 0;
    for (int k = 0; k < N && chains; ++k)
      chains = l.stride[k][l.rank - 1] == operands[static_cast<size_t>(k)]->stride(d) * shape[d];
    if (chains) {
      l.shape[l.rank - 1] *= shape[d];
      for (int k = 0; k < N; ++k) l.stride[k][l.rank - 1] = operands[static_cast<size_t>(k)]->stride(d);
    } else {
      l.shape[l.rank] = shape[d];
      for (int k = 0; k < N; ++k) l.stride[k][l.rank] = operands[static_cast<size_t>(k)]->stride(d);
      ++l.rank;
    }
  }
  return l;
}

/// Whether every operand can be read in packs of `width` elements of `elem_bytes` (16 bytes): unit last-dim
/// stride, rows a whole number of packs, and every row start 16-byte aligned.
template <int N>
bool packs_fit(const RowLayout<N>& l, const std::array<const Tensor*, N>& operands, int width) {
  if (l.len % width != 0) return false;
  for (int k = 0; k < N; ++k) {
    const Tensor& t = *operands[static_cast<size_t>(k)];
    if (l.col_stride[k] != 1 || reinterpret_cast<uintptr_t>(t.data()) % 16 != 0) return false;
    for (int d = 0; d < l.rank; ++d)
      if (l.stride[k][d] % width != 0) return false;
  }
  return true;
}

/// W consecutive elements, moved as one access (16 bytes for the vector paths).
template <class T, int W>
struct alignas(sizeof(T) * W) Pack {
  T v[W];
};

/// The machine word that moves `Bytes` (2, 4, 8 or 16) in one access.
template <int Bytes>
struct Word;
template <>
struct Word<16> {
  using type = int4;
};
template <>
struct Word<8> {
  using type = int2;
};
template <>
struct Word<4> {
  using type = int;
};
template <>
struct Word<2> {
  using type = unsigned short;
};

/// Pack<T, W> as words of up to 16 bytes.
template <class T, int W>
struct PackWords {
  static constexpr int kBytes = static_cast<int>(sizeof(T)) * W;
  static constexpr int kWordBytes = kBytes % 16 == 0 ? 16 : kBytes;
  static constexpr int kCount = kBytes / kWordBytes;
  using type = typename Word<kWordBytes>::type;
};

/// Loads the pack at `p` (W == 1: one element) with coherent loads (loads.cuh).
template <class T, int W>
__device__ __forceinline__ Pack<T, W> load_pack(const T* p) {
  using Words = PackWords<T, W>;
  Pack<T, W> r;
#pragma unroll
  for (int i = 0; i < Words::kCount; ++i)
    reinterpret_cast<typename Words::type*>(&r)[i] =
        ld_global<typename Words::type>(reinterpret_cast<const typename Words::type*>(p) + i);
  return r;
}

/// Stores the pack at `p` with one instruction per word (st.global.wb): the compiler cannot split it, as it
/// does plain stores of packs built element by element (one 4-byte store per quarter of a 16-byte pack,
/// which multiplies the memory transactions by four). The compiler moves no load past it either: issue the
/// loads a store does not need first.
template <class T, int W>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, W>& v) {
  using Words = PackWords<T, W>;
#pragma unroll
  for (int i = 0; i < Words::kCount; ++i)
    __stwb(reinterpret_cast<typename Words::type*>(p) + i,
           reinterpret_cast<const typename Words::type*>(&v)[i]);
}

/// Widens one element with the hardware conversions (one instruction each for f16 and bf16).
template <class T>
__device__ __forceinline__ float to_f32(T v) {
  if constexpr (std::is_same_v<T, bf16>)
    return __uint_as_float(static_cast<uint32_t>(v.bits) << 16);
  else if constexpr (std::is_same_v<T, f16>)
    return __half2float(__ushort_as_half(v.bits));
  else
    return v;
}

/// The W elements of a pack as floats. 16-bit packs widen a 32-bit word (two elements) at a time: a bf16 is
/// the high half of an f32, so each element costs one shift or mask, where element-wise extraction costs
/// two or three instructions (16-bit row kernels issued about twice the instructions per byte of f32 ones).
template <class T, int W>
__device__ __forceinline__ void widen(const Pack<T, W>& p, float (&f)[W]) {
  if constexpr (W % 2 == 0 && std::is_same_v<T, bf16>) {
    const auto* w = reinterpret_cast<const uint32_t*>(&p);
#pragma unroll
    for (int i = 0; i < W / 2; ++i) {
      f[2 * i] = __uint_as_float(w[i] << 16);
      f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  } else if constexpr (W % 2 == 0 && std::is_same_v<T, f16>) {
    const auto* h = reinterpret_cast<const __half2*>(&p);
#pragma unroll
    for (int i = 0; i < W / 2; ++i) {
      const float2 v = __half22float2(h[i]);
      f[2 * i] = v.x;
      f[2 * i + 1] = v.y;
    }
  } else {
#pragma unroll
    for (int e = 0; e < W; ++e) f[e] = to_f32(p.v[e]);
  }
}

/// Rounds to nearest even into T (a NaN stays a NaN, though its payload may change).
template <class T>
__device__ __forceinline__ T from_f32(float f) {
  if constexpr (std::is_same_v<T, bf16>) {
    T r;
    r.bits = __bfloat16_as_ushort(__float2bfloat16_rn(f));
    return r;
  } else if constexpr (std::is_same_v<T, f16>) {
    T r;
    r.bits = __half_as_ushort(__float2half_rn(f));
    return r;
  } else {
    return f;
  }
}

/// Rounds W floats into a pack, two per conversion instruction for the 16-bit types.
template <class T, int W>
__device__ __forceinline__ Pack<T, W> pack_from_f32(const float (&f)[W]) {
  Pack<T, W> r;
  if constexpr (W % 2 == 0 && std::is_same_v<T, bf16>) {
#pragma unroll
    for (int e = 0; e < W; e += 2) {
      const __nv_bfloat162 h = __floats2bfloat162_rn(f[e], f[e + 1]);
      r.v[e].bits = __bfloat16_as_ushort(h.x);
      r.v[e + 1].bits = __bfloat16_as_ushort(h.y);
    }
  } else if constexpr (W % 2 == 0 && std::is_same_v<T, f16>) {
#pragma unroll
    for (int e = 0; e < W; e += 2) {
      const __half2 h = __floats2half2_rn(f[e], f[e + 1]);
      r.v[e].bits = __half_as_ushort(h.x);
      r.v[e + 1].bits = __half_as_ushort(h.y);
    }
  } else {
#pragma unroll
    for (int e = 0; e < W; ++e) r.v[e] = from_f32<T>(f[e]);
  }
  return r;
}

/// 1 / x with the special-function unit (about 1 ulp; 1 / inf = 0).
__device__ __forceinline__ float fast_rcp(float x) {
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// 2^x with the special-function unit (relative error about 2^-22; flushes subnormal results to 0).
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// Elements per 16-byte pack.
template <class T>
constexpr int kVec = 16 / static_cast<int>(sizeof(T));

/// Threads per block of the elementwise kernels that stream dense operands in 16-byte packs.
constexpr int kStreamThreads = 128;
/// Packs per thread and operand in those kernels for `Inputs` input operands, all loads issued before the
/// first store: 2, or 4 for one 16-bit input. On an H200 at 16384 x 4096, f32 SiLU ran about 2% faster
/// than with 4; bf16 add 0.0925 ms against 0.0936 with 4 (1 and 8: 0.0936-0.0950), bf16 SwiGLU 0.0922 /
/// 0.0923 against 0.0929; the packed copy and add, which had 256 threads of 4 packs, went from 0.95 to
/// 0.99 of the copy bandwidth (f32 copy) and from 1.026 to 1.031 (f32 add).
template <class T, int Inputs = 1>
constexpr int kStreamPacks = sizeof(T) == 4 || Inputs > 1 ? 2 : 4;

/// Sum over the `tpr` threads of each row (rows in consecutive thread ranges; tpr a power of two >= 32, or
/// any multiple of 32 when the block is one row). Every thread of the block must call it.
__device__ __forceinline__ float row_sum(float v, int tpr) {
  __shared__ float partial[32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (tpr == 32) return v;
  const int warps = tpr / 32, first = static_cast<int>(threadIdx.x) / tpr * warps;
  __syncthreads();  // the previous reduction's readers are done
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  float s = 0;
  for (int w = 0; w < warps; ++w) s += partial[first + w];
  return s;
}

/// Maximum over the threads of each row; NaN loses (fmaxf), as it is caught later by the sum.
__device__ __forceinline__ float row_max(float v, int tpr) {
  __shared__ float partial[32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (tpr == 32) return v;
  const int warps = tpr / 32, first = static_cast<int>(threadIdx.x) / tpr * warps;
  __syncthreads();
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  float m = partial[first];
  for (int w = 1; w < warps; ++w) m = fmaxf(m, partial[first + w]);
  return m;
}

/// Launch shape of a row kernel: tpr threads per row, `packs` (kSmallPacks or `large`) held per thread,
/// blocks of max(tpr, 128) threads. Many independent warps per SM keep loads in flight while others
/// reduce, so a block is never wider than its row needs.
struct RowLaunch {
  int tpr;
  int packs;
  int threads;
  unsigned blocks;
};

/// `vectorised`: 16-byte packs; the one-element path only needs to be correct, so it keeps registers few.
inline RowLaunch row_launch(int64_t rows, int64_t packs, bool vectorised, int large) {
  RowLaunch r;
  r.packs = vectorised && packs > 32 * kSmallPacks ? large : kSmallPacks;
  r.tpr = 32;
  while (r.tpr < kMaxRowThreads && static_cast<int64_t>(r.tpr) * r.packs < packs) r.tpr *= 2;
  r.threads = r.tpr < 128 ? 128 : r.tpr;
  const int64_t per_block = r.threads / r.tpr;
  r.blocks = static_cast<unsigned>((rows + per_block - 1) / per_block);
  return r;
}

}  // namespace metallic::cuda
