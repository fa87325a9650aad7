// Decode-time GEMV: out[m, n] = sum_k x[m, k] W[n, k] + bias[n] for M <= 8. It is bound by reading W once,
// so everything serves keeping many 16-byte weight loads in flight on every SM and the grid's tail short:
// - dense weights: a block owns R rows and its 4 warps split every row: thread t takes the 16-byte chunks
//   t, t + 128, ... (8 elements each), U of them per row and step, all loads of a step issued before any is
//   used, with L1-bypassing loads (W is read once) while x (small, reused by every row) goes
//   through L1. A block is a few memory round trips long, so thousands of them spread evenly over the SMs,
//   and a shared-memory sum joins the warps' partial dot products. Once its loads have returned, a block
//   lets the next kernel launch, so that kernel's own weight loads overlap this one's reductions. A plain
//   product whose rows fit one wave of 8-row blocks takes those instead, each issuing its next step's
//   loads before it uses the current ones, and one whose rows are at most four steps long takes 6-row
//   blocks that wait for each step in turn;
// - the fused forms of fused_linear (RMSNorm of x before, residual add or SwiGLU after) for dense weights,
//   and the q/k/v projection's RoPE and cache writes after (rope_kv_epilogue.cuh);
// - 3 to 8 rows of f16/bf16 x against weights of the same type run on the tensor cores (gemv_mma);
// - block-quantized weights go to the integer GEMV of gemv_int8.cu.
#include <cuda_fp16.h>

#include <algorithm>
#include <type_traits>

#include "backend/cuda/check.h"
#include "backend/cuda/gemv.h"
#include "backend/cuda/gemv_common.cuh"
#include "backend/cuda/gemv_epilogue.cuh"
#include "backend/cuda/gemv_int8.h"
#include "backend/cuda/launch.h"
#include "backend/cuda/pdl.cuh"
#include "backend/cuda/rows.cuh"
#include "metallic/core/context.h"
#include "metallic/core/half.h"
#include "metallic/core/memory_pool.h"
#include "metallic/ops/copy.h"

namespace metallic::cuda {
namespace {

using namespace gemv_detail;

constexpr int kThreads = kBlockThreads;

// ---- 8 consecutive elements of a dense type from 16-byte vectors ----------------------------------------

template <class E>
constexpr int kVecs = sizeof(E) == 4 ? 2 : 1;  // 16-byte vectors per 8 elements

template <class E>
__device__ __forceinline__ void unpack8(const uint4* v, float (&f)[8]) {
  widen(*reinterpret_cast<const Pack<E, 8>*>(v), f);
}

template <class T>
__device__ __forceinline__ void load_x8(const T* p, float (&f)[8]) {
  uint4 v[kVecs<T>];
#pragma unroll
  for (int i = 0; i < kVecs<T>; ++i) v[i] = ld_global<uint4>(reinterpret_cast<const uint4*>(p) + i);
  unpack8<T>(v, f);
}

__device__ __forceinline__ float dot8(const float (&a)[8], const float (&b)[8]) {
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) s = fmaf(a[i], b[i], s);
  return s;
}

// ---- dense weights (F32, F16, BF16), 16-byte aligned rows ------------------------------------------------
// The fused forms cost the weight stream nothing: the RMSNorm of x is a per-row factor, so each block sums
// x^2 beside its dot products (every block reads all of x anyway) and scales its sums once; the SwiGLU
// epilogue gives a block gate row j and up row N/2 + j, so it can combine them itself; the RopeKv epilogue
// gives it whole rotation pairs.

template <class T>
struct DenseArgs {
  const uint8_t* w;
  int64_t row_bytes;
  const T* x;
  int64_t ldx;
  int K;
  const float* norm;  // RMSNorm gain, null: ones (used with Norm only)
  float eps;
  bool static_weights;  // W may be read before the kernel before has finished
  GemvOut<T> o;
};

// Chunks per row and step: 8 16-byte vectors in flight per thread (R * V when that is more).
template <class E, int R>
constexpr int kDenseUnroll = step_unroll(R* kVecs<E>);

// One step's weight vectors.
template <class E, int R, int U = kDenseUnroll<E, R>>
struct DenseStep {
  uint4 w[U][R][kVecs<E>];
};

// Issues the weight loads of the step whose first chunk is c0 (zeros past the row).
template <class E, int R, int U = kDenseUnroll<E, R>>
__device__ __forceinline__ void dense_load(uint4 (&wv)[U][R][kVecs<E>], const uint4* const (&rows)[R], int c0,
                                           int chunks) {
#pragma unroll
  for (int j = 0; j < U; ++j)
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int v = 0; v < kVecs<E>; ++v)
        wv[j][r][v] = c0 + kThreads * j < chunks
                          ? ld_stream(rows[r] + static_cast<int64_t>(c0 + kThreads * j) * kVecs<E> + v)
                          : make_uint4(0, 0, 0, 0);
}

// Adds the products of that step to acc (and with Norm the squares of x to ss).
template <class E, class T, int MM, int R, bool Norm, int U = kDenseUnroll<E, R>>
__device__ __forceinline__ void dense_step(const uint4 (&wv)[U][R][kVecs<E>], int c0, int chunks,
                                           const DenseArgs<T>& a, float (&acc)[R][MM], float (&ss)[MM]) {
  const int M = a.o.M;
#pragma unroll
  for (int j = 0; j < U; ++j) {
    const int c = c0 + kThreads * j;
    if (c >= chunks) break;
    float wf[R][8], g[8];
#pragma unroll
    for (int r = 0; r < R; ++r) unpack8<E>(wv[j][r], wf[r]);
    if constexpr (Norm) {
      if (a.norm)
        load_x8(a.norm + 8 * c, g);
      else
#pragma unroll
        for (int i = 0; i < 8; ++i) g[i] = 1.f;
    }
#pragma unroll
    for (int m = 0; m < MM; ++m) {
      float xv[8];
      load_x8(a.x + min(m, M - 1) * a.ldx + 8 * c, xv);
      if constexpr (Norm) {
        ss[m] += dot8(xv, xv);
#pragma unroll
        for (int i = 0; i < 8; ++i) xv[i] *= g[i];
      }
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r][m] += dot8(wf[r], xv);
    }
  }
}

// With Ahead, a block keeps two steps of loads in flight (stream_steps); without, it waits for each in turn.
template <class E, class T, int MM, int R, bool Norm, Epilogue Epi, bool Ahead>
__global__ void __launch_bounds__(kThreads) gemv_dense(DenseArgs<T> a) {
  constexpr int U = kDenseUnroll<E, R>;
  const int tid = threadIdx.x;
  const uint4* rows[R];
#pragma unroll
  for (int r = 0; r < R; ++r)
    rows[r] = reinterpret_cast<const uint4*>(
        a.w + static_cast<int64_t>(block_row<R, Epi>(a.o, blockIdx.x, r)) * a.row_bytes);
  const double inv_freq = pair_inv_freq<MM, R, Epi>(a.o, tid);
  const int chunks = a.K / 8;
  float acc[R][MM] = {}, ss[MM] = {};
  // Launched as a programmatic dependent: with static weights the first weight loads overlap the end of the
  // kernel that writes x, and everything past the wait may read x and write out.
  if (!a.static_weights) wait_for_producer();
  stream_steps<Ahead, DenseStep<E, R>>(
      tid, chunks, kThreads * U,
      [&](int c0, DenseStep<E, R>& st) { dense_load<E, R>(st.w, rows, c0, chunks); },
      [&](int c0, const DenseStep<E, R>& st) {
        dense_step<E, T, MM, R, Norm>(st.w, c0, chunks, a, acc, ss);
      });
  finish_block<T, MM, R, Norm, Epi, true>(acc, ss, a.K, a.eps, a.o, inv_freq, blockIdx.x);
}

// ---- same-dtype f16/bf16 x and W, 3 to 8 rows of x: tensor cores -----------------------------------------
// With 8 rows of x every weight element feeds 8 FMAs, which the FMA pipes cannot sustain at memory speed;
// mma.sync m16n8k16 (f32 accumulation) takes 16 weight rows times 8 rows of x per instruction instead.
// The dot product does not care in which order k is summed, so each lane loads 16 contiguous bytes of its
// weight rows g and g + 8 and of x row g (g = lane / 4) at k = 32 s + 8 (lane % 4) and hands words 0-1 to
// one mma and words 2-3 to another: A and B then agree on a permutation of every 32 values of k.

template <class E>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<E, bf16>)
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

constexpr int kMmaSlabs = 4;  // 32-element slabs per warp and step: 8 weight loads in flight per lane

// A block owns 16 weight rows; its 4 warps take the slabs w, w + 4, ... of every row.
template <class E>
__global__ void __launch_bounds__(kThreads)
    gemv_mma(const uint8_t* __restrict__ w, int64_t row_bytes, const E* __restrict__ x, int64_t ldx, int M,
             int K, int N, const float* __restrict__ bias, E* __restrict__ out) {
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int row0 = blockIdx.x * 16;
  const uint8_t* ra = w + static_cast<int64_t>(min(row0 + g, N - 1)) * row_bytes;
  const uint8_t* rb = w + static_cast<int64_t>(min(row0 + g + 8, N - 1)) * row_bytes;
  const E* xr = x + static_cast<int64_t>(min(g, M - 1)) * ldx;
  const bool xrow = g < M;  // columns of x past M are zeros
  const int slabs = K / 32;
  float c[4] = {0.f, 0.f, 0.f, 0.f};
  for (int s0 = warp; s0 < slabs; s0 += 4 * kMmaSlabs) {
    uint4 va[kMmaSlabs], vb[kMmaSlabs], vx[kMmaSlabs];
#pragma unroll
    for (int j = 0; j < kMmaSlabs; ++j) {
      const int s = s0 + 4 * j;
      const int64_t off = (32 * static_cast<int64_t>(s) + 8 * t) * 2;
      const bool in = s < slabs;
      va[j] = in ? ld_stream(ra + off) : make_uint4(0, 0, 0, 0);
      vb[j] = in ? ld_stream(rb + off) : make_uint4(0, 0, 0, 0);
      vx[j] =
          in && xrow ? __ldg(reinterpret_cast<const uint4*>(xr + 32 * s + 8 * t)) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int j = 0; j < kMmaSlabs; ++j) {
      const uint32_t a0[4] = {va[j].x, vb[j].x, va[j].y, vb[j].y};
      const uint32_t a1[4] = {va[j].z, vb[j].z, va[j].w, vb[j].w};
      mma16816<E>(c, a0, vx[j].x, vx[j].y);
      mma16816<E>(c, a1, vx[j].z, vx[j].w);
    }
  }
  // c holds rows g and g + 8, columns (rows of x) 2t and 2t + 1; the warps' tiles are summed in shared
  // memory.
  __shared__ float part[kThreads / 32][16][8];
  part[warp][g][2 * t] = c[0], part[warp][g][2 * t + 1] = c[1];
  part[warp][g + 8][2 * t] = c[2], part[warp][g + 8][2 * t + 1] = c[3];
  __syncthreads();
  const int r = tid >> 3, m = tid & 7, n = row0 + r;
  const float v = part[0][r][m] + part[1][r][m] + part[2][r][m] + part[3][r][m];
  if (n < N && m < M) out[static_cast<int64_t>(m) * N + n] = E(v + bias_at(bias, n));
}

template <class T, int MM, int R, bool Norm, Epilogue Epi, bool Ahead = false>
void launch(const Tensor& x, const Tensor& w, int64_t row_bytes, const float* bias, const GemvFusion& f,
            const Tensor& out, cudaStream_t s) {
  const DenseArgs<T> a{
      static_cast<const uint8_t*>(w.data()),
      row_bytes,
      x.data_as<T>(),
      x.stride(0),
      static_cast<int>(x.dim(1)),
      f.norm,
      f.eps,
      f.static_weights,
      {static_cast<int>(x.dim(0)), static_cast<int>(w.dim(0)), bias,
       out.defined() ? out.data_as<T>() : nullptr, f.rope_kv ? *f.rope_kv : RopeKvEpilogue{}}};
  // R weight rows per block in every form (SwiGLU: R / 2 gate rows and their up rows).
  const unsigned grid = static_cast<unsigned>((w.dim(0) + R - 1) / R);
#define MTL_DENSE(E) launch_dependent(gemv_dense<E, T, MM, R, Norm, Epi, Ahead>, grid, kThreads, 0, s, a)
  switch (w.dtype()) {
    case DType::F32: MTL_DENSE(float); break;
    case DType::F16: MTL_DENSE(f16); break;
    case DType::BF16: MTL_DENSE(bf16); break;
    default: fail(ErrorCode::Internal, "linear: no dense GEMV for ", name(w.dtype()));
  }
#undef MTL_DENSE
  MTL_CUDA_CHECK_LAUNCH("linear: gemv");
}

// Blocks of 8 rows with their steps overlapped (Ahead) that fit on the current device at once.
template <class E, class T>
unsigned ahead_resident() {
  static const unsigned resident =
      resident_blocks(gemv_dense<E, T, 1, 8, false, Epilogue::Store, true>, kThreads, 0);
  return resident;
}

// True when one row of x against w (a plain product, no fusion) takes blocks of 8 rows with their steps
// overlapped: when those blocks are one wave, at least one per multiprocessor. Each block then streams its
// rows from start to end with two steps in flight, where blocks of fewer rows would leave a partial last
// wave. Measured on an H200, bf16: 1x11008x4096 0.85 of copy against 0.70-0.73, 1x4096x4096 0.63-0.64
// against 0.55-0.56; with more rows than a wave holds, as at 1x4096x11008, 0.79-0.80 against 0.80-0.85.
// The fused forms of a decode step keep the blocks below: there, same-run pairs gave 7B-shape f16 decode
// 262.5 against 257.5 tok/s, but Llama-3-8B-shape bf16 237.7 against 247.3 and Qwen2.5-1.5B-shape f16
// 806 against 872.
template <class T>
bool eight_rows_ahead(const Tensor& w) {
  static const auto sms = static_cast<unsigned>(sm_count(current_device()));
  unsigned resident = 0;
  switch (w.dtype()) {
    case DType::F32: resident = ahead_resident<float, T>(); break;
    case DType::F16: resident = ahead_resident<f16, T>(); break;
    default: resident = ahead_resident<bf16, T>(); break;
  }
  const int64_t blocks = (w.dim(0) + 7) / 8;
  return blocks >= sms && blocks <= resident;
}

// True when one row of x against 16-bit w (a plain product, no fusion) takes blocks of 6 rows that wait for
// each step in turn: rows of at most four steps (K <= 4096), too many for one wave of the blocks above.
// Measured on an H200 in the same process as PyTorch, three weight buffers each, bf16 1x4096x11008: 6 rows
// 0.860 / 0.870 / 0.874 of copy, the 4-row blocks below 0.828 / 0.817 / 0.835, 8 rows 0.843 / 0.825 /
// 0.838, 5 or 7 rows 0.844-0.870, PyTorch 0.817 / 0.766 / 0.777; 1x3584x18944: 6 rows 0.935-0.938, 4 rows
// 0.906-0.911.
bool six_rows_in_turn(const Tensor& w, int64_t row_vectors) {
  return w.dtype() != DType::F32 && row_vectors <= 4 * kThreads;
}

template <class T, bool Norm, Epilogue Epi>
void launch_rows(const Tensor& x, const Tensor& w, int64_t row_bytes, const float* bias, const GemvFusion& f,
                 const Tensor& out, cudaStream_t s) {
  const int64_t m = x.dim(0), row_vectors = x.dim(1) / 8 * (w.dtype() == DType::F32 ? 2 : 1);
  // From 2 rows of x on, 2 or 4 weight rows per block share each x load (the x traffic through L1 grows
  // with M). SwiGLU and RopeKv pair rows, so they never take a single row.
  constexpr int kOne = Epi == Epilogue::SwiGLU || Epi == Epilogue::RopeKv ? 2 : 1;
  if constexpr (!Norm && Epi == Epilogue::Store) {
    if (m == 1 && eight_rows_ahead<T>(w))
      return launch<T, 1, 8, false, Epi, true>(x, w, row_bytes, bias, f, out, s);
    if (m == 1 && six_rows_in_turn(w, row_vectors))
      return launch<T, 1, 6, false, Epi>(x, w, row_bytes, bias, f, out, s);
  }
  if (m == 1) {
    switch (single_row_block_rows(row_vectors, w.dim(0))) {
      case 8: launch<T, 1, 8, Norm, Epi>(x, w, row_bytes, bias, f, out, s); break;
      case 4: launch<T, 1, 4, Norm, Epi>(x, w, row_bytes, bias, f, out, s); break;
      case 1: launch<T, 1, kOne, Norm, Epi>(x, w, row_bytes, bias, f, out, s); break;
      default: launch<T, 1, 2, Norm, Epi>(x, w, row_bytes, bias, f, out, s); break;
    }
  } else if (m == 2) {
    launch<T, 2, 2, Norm, Epi>(x, w, row_bytes, bias, f, out, s);
  } else if (m <= 4) {
    launch<T, 4, 4, Norm, Epi>(x, w, row_bytes, bias, f, out, s);
  } else {
    launch<T, 8, 4, Norm, Epi>(x, w, row_bytes, bias, f, out, s);
  }
}

template <class T, bool Norm>
void launch_epilogue(const Tensor& x, const Tensor& w, int64_t row_bytes, const float* bias,
                     const GemvFusion& f, const Tensor& out, cudaStream_t s) {
  if (f.rope_kv) return launch_rows<T, Norm, Epilogue::RopeKv>(x, w, row_bytes, bias, f, out, s);
  switch (f.epilogue) {
    case LinearEpilogue::Store:
      launch_rows<T, Norm, Epilogue::Store>(x, w, row_bytes, bias, f, out, s);
      break;
    case LinearEpilogue::Accumulate:
      launch_rows<T, Norm, Epilogue::Accumulate>(x, w, row_bytes, bias, f, out, s);
      break;
    case LinearEpilogue::SwiGLU:
      launch_rows<T, Norm, Epilogue::SwiGLU>(x, w, row_bytes, bias, f, out, s);
      break;
  }
}

template <class T>
void gemv_typed(const Tensor& x, const Tensor& w, int64_t row_bytes, const float* bias, const GemvFusion& f,
                const Tensor& out, cudaStream_t s) {
  const int64_t m = x.dim(0);
  const bool fused = f.rms_norm || f.epilogue != LinearEpilogue::Store || f.rope_kv;
  if constexpr (sizeof(T) == 2) {
    if (!fused && m >= 3 && w.dtype() == x.dtype() && x.dim(1) % 32 == 0) {
      const int N = static_cast<int>(out.dim(1));
      gemv_mma<T><<<static_cast<unsigned>((N + 15) / 16), kThreads, 0, s>>>(
          static_cast<const uint8_t*>(w.data()), row_bytes, x.data_as<T>(), x.stride(0), static_cast<int>(m),
          static_cast<int>(x.dim(1)), N, bias, out.data_as<T>());
      MTL_CUDA_CHECK_LAUNCH("linear: gemv_mma");
      return;
    }
  }
  if (f.rms_norm)
    launch_epilogue<T, true>(x, w, row_bytes, bias, f, out, s);
  else
    launch_epilogue<T, false>(x, w, row_bytes, bias, f, out, s);
}

}  // namespace

bool gemv_takes(const Tensor& w, int64_t rows) {
  if (rows > kGemvMaxRows || w.dim(1) > (int64_t{1} << 30) || w.dim(0) >= (int64_t{1} << 31)) return false;
  const int64_t row_bytes = row_stride_bytes(w);
  const auto addr = reinterpret_cast<uintptr_t>(w.data());
  switch (w.dtype()) {
    case DType::F32:
    case DType::F16:
    case DType::BF16: return w.stride(1) == 1 && w.dim(1) % 8 == 0 && addr % 16 == 0 && row_bytes % 16 == 0;
    case DType::Q4_0X8:
    case DType::Q8_0X8: return addr % 16 == 0;  // groups are 144 or 272 bytes, 16-byte multiples
    default: return gemv_int8_supported(w.dtype()) && addr % 2 == 0 && row_bytes % 2 == 0;
  }
}

void gemv(const Tensor& x, const Tensor& w, const float* bias, const Tensor& out, cudaStream_t s,
          const GemvFusion& fusion) {
  const int64_t row_bytes = row_stride_bytes(w);
  if (is_quantized(w.dtype())) {
    gemv_int8(x, w, row_bytes, bias, fusion, out, s);
    return;
  }
  // x is read in 16-byte vectors (K is a multiple of 8 here); an unaligned view goes through an aligned copy.
  const bool aligned = rows_aligned16(x);
  MemoryPool& pool = x.context()->pool();
  const MemoryPool::Mark mark = pool.mark();
  Tensor xa = x;
  if (!aligned) {
    xa = Tensor::empty(x.context(), x.shape(), x.dtype(), Storage::Pool);
    metallic::copy(x, xa);
  }
  switch (x.dtype()) {
    case DType::F32: gemv_typed<float>(xa, w, row_bytes, bias, fusion, out, s); break;
    case DType::F16: gemv_typed<f16>(xa, w, row_bytes, bias, fusion, out, s); break;
    case DType::BF16: gemv_typed<bf16>(xa, w, row_bytes, bias, fusion, out, s); break;
    default: fail(ErrorCode::NotSupported, "linear: dtype ", name(x.dtype()));
  }
  pool.release(mark);  // stream order makes the copy reusable by later work on this stream
}

}  // namespace metallic::cuda
