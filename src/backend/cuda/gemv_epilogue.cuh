// The end of a GEMV block that owns R weight rows and splits every row over its 4 warps (the dense and the
// grouped-quant kernels): the warps' partial dot products meet in shared memory and one thread per output
// applies the epilogue: store, add into out (the residual update), gate a row by its SwiGLU partner, or
// rotate a q/k pair into q or the KV cache (rope_kv_epilogue.cuh).
#pragma once

#include "backend/cuda/gemv_common.cuh"
#include "backend/cuda/pdl.cuh"
#include "backend/cuda/rope_kv_epilogue.cuh"

namespace metallic::cuda::gemv_detail {

/// Threads per block: 4 warps.
constexpr int kBlockThreads = 128;

/// What a block does with its sums.
enum class Epilogue { Store, Accumulate, SwiGLU, RopeKv };

/// Where a block's results go.
template <class T>
struct GemvOut {
  int M, N;
  const float* bias;       ///< null: zeros
  T* out;                  ///< [M, N], or [M, N / 2] for SwiGLU
  RopeKvEpilogue rope_kv;  ///< used with RopeKv only
};

/// Output columns (or rotation pairs) of a block of R rows: SwiGLU and RopeKv pair its rows.
template <int R, Epilogue Epi>
constexpr int kOutsOf = Epi == Epilogue::SwiGLU || Epi == Epilogue::RopeKv ? R / 2 : R;

/// Weight row r of block `block`: rows block * R + r, under SwiGLU gate row j and up row N / 2 + j, under
/// RoPE the two elements of rotation pairs. Rows past the end re-read the last; their sums are dropped.
template <int R, Epilogue Epi, class T>
__device__ __forceinline__ int block_row(const GemvOut<T>& o, int block, int r) {
  constexpr int kOuts = kOutsOf<R, Epi>;
  if constexpr (Epi == Epilogue::RopeKv) return o.rope_kv.row(block, r, R);
  const int col0 = block * kOuts, half = o.N / 2;
  if constexpr (Epi == Epilogue::SwiGLU) return min(col0 + r % kOuts, half - 1) + (r < kOuts ? 0 : half);
  return min(col0 + r, o.N - 1);
}

/// The frequency of the rotation pair thread `tid` stores (RopeKv; 0 otherwise), which depends on the options
/// alone: worked out while the weights stream in.
template <int MM, int R, Epilogue Epi, class T>
__device__ __forceinline__ double pair_inv_freq(const GemvOut<T>& o, int tid) {
  if constexpr (Epi == Epilogue::RopeKv)
    if (tid < kOutsOf<R, Epi> * MM) return o.rope_kv.freq.inv_freq(o.rope_kv.pair(blockIdx.x, tid / MM, R));
  return 0.0;
}

/// With Trigger, lets the next kernel launch (every weight load has returned); sums acc [R][MM] (and with
/// Norm the row sums of x^2 in ss, over K elements) across the block and writes the outputs of row group
/// `block` (blockIdx.x unless the block takes several). A block that calls it again must sync its threads
/// first: every call shares one shared-memory buffer.
template <class T, int MM, int R, bool Norm, Epilogue Epi, bool Trigger>
__device__ __forceinline__ void finish_block(const float (&acc)[R][MM], const float (&ss)[MM], int K,
                                             float eps, const GemvOut<T>& o, double inv_freq, int block) {
  constexpr int kOuts = kOutsOf<R, Epi>, kWarps = kBlockThreads / 32;
  static_assert(kOuts * 2 == R || kOuts == R, "SwiGLU and RopeKv pair rows");
  if constexpr (Trigger) allow_dependents();
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  constexpr int kSums = R * MM + (Norm ? MM : 0);
  __shared__ float part[kWarps][kSums];
#pragma unroll
  for (int i = 0; i < kSums; ++i) {
    float v = i < R * MM ? acc[i / MM][i % MM] : ss[i - R * MM];
#pragma unroll
    for (int s = 16; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
    if (lane == 0) part[warp][i] = v;
  }
  __syncthreads();
  if (tid >= kOuts * MM) return;
  const int r = tid / MM, m = tid % MM, n = block * kOuts + r, M = o.M, N = o.N;
  const auto sum = [&](int i) {
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) v += part[w][i];
    return v;
  };
  float scale = 1.f;
  if constexpr (Norm) scale = rsqrtf(sum(R * MM + m) / static_cast<float>(K) + eps);
  if constexpr (Epi == Epilogue::RopeKv) {
    if (m >= M) return;
    const RopeKvEpilogue& e = o.rope_kv;
    const int ra = e.row(block, r, R), rb = e.row(block, r + kOuts, R);
    const float ya = scale * sum(tid) + bias_at(o.bias, ra);
    const float yb = scale * sum(tid + kOuts * MM) + bias_at(o.bias, rb);
    e.store(m, ra / e.d, e.pair(block, r, R), ya, yb, inv_freq);
  } else if constexpr (Epi == Epilogue::SwiGLU) {
    const int half = N / 2;
    if (n >= half || m >= M) return;
    const float gate = scale * sum(tid) + bias_at(o.bias, n);
    const float up = scale * sum(tid + kOuts * MM) + bias_at(o.bias, half + n);
    o.out[static_cast<int64_t>(m) * half + n] = T(swiglu_of(gate, up));
  } else {
    if (n >= N || m >= M) return;
    float v = scale * sum(tid) + bias_at(o.bias, n);
    T* p = o.out + static_cast<int64_t>(m) * N + n;
    if constexpr (Epi == Epilogue::Accumulate) v += static_cast<float>(*p);
    *p = T(v);
  }
}

/// Weight rows per block for one row of x, whose rows hold `vectors` 16-byte loads each: as many as one step
/// of loads (8 per thread) still covers, so that a block is a single memory round trip and fewer blocks are
/// launched, reduced and retired; at least 4 where that leaves 512 blocks or more (measured on an H200:
/// 7B-shape decode 0.84 of the roofline against 0.81 with 2), else 2 for rows longer than one step.
inline int single_row_block_rows(int64_t vectors, int64_t n) {
  if (vectors * 8 <= int64_t{8} * kBlockThreads) return 8;
  if (n / 4 >= 512) return 4;
  for (int r = 4; r >= 1; r /= 2)
    if (vectors * r <= int64_t{8} * kBlockThreads) return r;
  return 2;
}

}  // namespace metallic::cuda::gemv_detail
