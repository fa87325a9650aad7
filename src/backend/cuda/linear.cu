// y = x W^T + b on CUDA. For at most 8 rows of x a fused dequantize-GEMV kernel per weight type reads each
// weight byte once: every warp owns output rows, its lanes decode 32-element (8 for dense) units of the
// row straight from global memory into registers, x waits in shared memory as f32 (padded against bank
// conflicts, staged in chunks of K), products accumulate in f32 and a warp shuffle reduces them. Larger
// batches dequantize bounded tiles of W (at most 64 MiB, from the context's pool) into x's dtype and run
// cuBLASLt on them. Embedding gathers live here too, sharing the block decoders.
#include <algorithm>

#include "backend/cuda/launch.h"
#include "backend/cuda/matmul_lt.h"
#include "backend/matmul.h"
#include "metallic/core/memory_pool.h"
#include "metallic/model/quant_blocks.h"
#include "metallic/ops/copy.h"

namespace metallic::cuda {
namespace {

using namespace metallic::quant;

constexpr int kWarps = 8;          // warps per block
constexpr int kRowsPerWarp = 4;    // output rows each warp accumulates
constexpr int kStageFloats = 8192; // x elements (all rows together) staged per chunk

__device__ __forceinline__ int padded(int i) { return i + (i >> 5) * 4; }

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(f16 v) { return f16_to_f32(v.bits); }
__device__ __forceinline__ float to_f(bf16 v) { return bf16_to_f32(v.bits); }

__device__ __forceinline__ uint16_t ld16(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }

// ---- unit decoders: decode(row, u, w) writes the kUnit weights of unit u of a row -----------------------

struct DecF32 {
  static constexpr int kUnit = 8;
  __device__ static void decode(const uint8_t* row, int64_t u, float* w) {
    const float4* p = reinterpret_cast<const float4*>(row + u * 32);
    const float4 a = __ldg(p), b = __ldg(p + 1);
    w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w, w[4] = b.x, w[5] = b.y, w[6] = b.z, w[7] = b.w;
  }
};
template <bool kBf16>
struct DecHalf {
  static constexpr int kUnit = 8;
  __device__ static void decode(const uint8_t* row, int64_t u, float* w) {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(row + u * 16));
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint16_t lo = static_cast<uint16_t>(words[i] & 0xffffu), hi = static_cast<uint16_t>(words[i] >> 16);
      w[2 * i] = kBf16 ? bf16_to_f32(lo) : f16_to_f32(lo);
      w[2 * i + 1] = kBf16 ? bf16_to_f32(hi) : f16_to_f32(hi);
    }
  }
};
struct DecQ8_0 {
  static constexpr int kUnit = 32;
  __device__ static void decode(const uint8_t* row, int64_t u, float* w) {
    const uint8_t* b = row + u * 34;
    const float d = f16_to_f32(ld16(b));
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const uint16_t q = ld16(b + 2 + 2 * i);
      w[2 * i] = d * static_cast<float>(static_cast<int8_t>(q & 0xff));
      w[2 * i + 1] = d * static_cast<float>(static_cast<int8_t>(q >> 8));
    }
  }
};
struct DecQ4_0 {
  static constexpr int kUnit = 32;
  __device__ static void decode(const uint8_t* row, int64_t u, float* w) {
    const uint8_t* b = row + u * 18;
    const float d = f16_to_f32(ld16(b));
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const uint16_t q = ld16(b + 2 + 2 * i);
      w[2 * i] = d * static_cast<float>(static_cast<int>(q & 0xf) - 8);
      w[2 * i + 1] = d * static_cast<float>(static_cast<int>((q >> 8) & 0xf) - 8);
      w[2 * i + 16] = d * static_cast<float>(static_cast<int>((q >> 4) & 0xf) - 8);
      w[2 * i + 17] = d * static_cast<float>(static_cast<int>(q >> 12) - 8);
    }
  }
};
struct DecQ4_K {  // unit = one 32-element group g of a 256-element super-block (rows 16-byte aligned)
  static constexpr int kUnit = 32;
  __device__ static void decode(const uint8_t* row, int64_t u, float* w) {
    const uint8_t* b = row + (u >> 3) * 144;
    const int g = static_cast<int>(u & 7);
    const uint2 hd = __ldg(reinterpret_cast<const uint2*>(b));  // d, dmin, scales[0..3]
    const float d = f16_to_f32(static_cast<uint16_t>(hd.x & 0xffff)), dmin = f16_to_f32(static_cast<uint16_t>(hd.x >> 16));
    uint8_t sc, m;
    get_scale_min_k4(g, b + 4, sc, m);
    const float d1 = d * sc, m1 = dmin * m;
    const uint4* q = reinterpret_cast<const uint4*>(b + 16 + (g >> 1) * 32);
    const uint4 q0 = __ldg(q), q1 = __ldg(q + 1);
    const uint32_t words[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
    const int shift = (g & 1) * 4;
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) w[4 * i + j] = d1 * static_cast<float>((words[i] >> (8 * j + shift)) & 0xf) - m1;
  }
};
struct DecQ6_K {  // unit (h, q): 32 consecutive elements h*128 + q*32 + l of a super-block
  static constexpr int kUnit = 32;
  __device__ static void decode(const uint8_t* row, int64_t u, float* w) {
    const uint8_t* b = row + (u >> 3) * 210;
    const int j = static_cast<int>(u & 7), h = j >> 2, q = j & 3;
    const float d = f16_to_f32(ld16(b + 208));
    const uint8_t* ql = b + h * 64 + (q & 1) * 32;
    const uint8_t* qh = b + 128 + h * 32;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192 + h * 8);
    const float s0 = d * static_cast<float>(sc[2 * q]), s1 = d * static_cast<float>(sc[2 * q + 1]);
    const int ls = 4 * (q >> 1), hs = 2 * q;
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const uint16_t l2 = ld16(ql + 2 * i), h2 = ld16(qh + 2 * i);
#pragma unroll
      for (int t = 0; t < 2; ++t) {
        const int l = 2 * i + t;
        const int lo = ((t ? l2 >> 8 : l2) >> ls) & 0xf, hi = ((t ? h2 >> 8 : h2) >> hs) & 3;
        w[l] = (l < 16 ? s0 : s1) * static_cast<float>((lo | (hi << 4)) - 32);
      }
    }
  }
};

// ---- GEMV: out[m, n] = sum_k x[m, k] w[n, k] + bias[n], m < M <= MM -------------------------------------

template <class Dec, int MM, class T>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(const uint8_t* __restrict__ w, int64_t row_bytes,
                                                          const T* __restrict__ x, int64_t ldx, int M, int K, int N,
                                                          const float* __restrict__ bias, T* __restrict__ out) {
  constexpr int U = Dec::kUnit;
  constexpr int KC = kStageFloats / MM;  // x columns per chunk, a multiple of 256
  __shared__ float xs[MM][KC + KC / 8];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int row0 = (blockIdx.x * kWarps + warp) * kRowsPerWarp;
  float acc[kRowsPerWarp][MM];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r)
#pragma unroll
    for (int m = 0; m < MM; ++m) acc[r][m] = 0.f;
  for (int k0 = 0; k0 < K; k0 += KC) {
    const int kc = min(KC, K - k0);
    __syncthreads();
    for (int i = threadIdx.x; i < MM * kc; i += blockDim.x) {
      const int m = i / kc, k = i - m * kc;
      xs[m][padded(k)] = m < M ? to_f(x[m * ldx + k0 + k]) : 0.f;
    }
    __syncthreads();
    const int units = kc / U, ubase = k0 / U;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int n = row0 + r;
      if (n >= N) break;
      const uint8_t* wrow = w + static_cast<int64_t>(n) * row_bytes;
      for (int u = lane; u < units; u += 32) {
        float wv[U];
        Dec::decode(wrow, ubase + u, wv);
        const int e0 = u * U;
#pragma unroll
        for (int m = 0; m < MM; ++m) {
          float s = 0.f;
#pragma unroll
          for (int e = 0; e < U; e += 4) {
            const float4 xv = *reinterpret_cast<const float4*>(&xs[m][padded(e0 + e)]);
            s += wv[e] * xv.x + wv[e + 1] * xv.y + wv[e + 2] * xv.z + wv[e + 3] * xv.w;
          }
          acc[r][m] += s;
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int n = row0 + r;
#pragma unroll
    for (int m = 0; m < MM; ++m) {
      float v = acc[r][m];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0 && n < N && m < M) out[static_cast<int64_t>(m) * N + n] = T(v + (bias ? bias[n] : 0.f));
    }
  }
}

template <class Dec, class T>
void launch_gemv(const Tensor& x, const uint8_t* w, int64_t row_bytes, const float* bias, const Tensor& out,
                 cudaStream_t stream) {
  const int M = static_cast<int>(x.dim(0)), K = static_cast<int>(x.dim(1)), N = static_cast<int>(out.dim(1));
  const unsigned grid = static_cast<unsigned>((N + kWarps * kRowsPerWarp - 1) / (kWarps * kRowsPerWarp));
  const T* px = x.data_as<T>();
  T* po = out.data_as<T>();
  const int64_t ldx = x.stride(0);
#define MTL_GEMV(MM) gemv_kernel<Dec, MM, T><<<grid, kWarps * 32, 0, stream>>>(w, row_bytes, px, ldx, M, K, N, bias, po)
  if (M == 1) MTL_GEMV(1);
  else if (M == 2) MTL_GEMV(2);
  else if (M <= 4) MTL_GEMV(4);
  else MTL_GEMV(8);
#undef MTL_GEMV
  MTL_CUDA_CHECK_LAUNCH("linear: gemv_kernel");
}

/// True when the fused GEMV handles `w`: a type with a decoder and the row alignment its loads need.
bool gemv_supported(const Tensor& w, int64_t row_bytes) {
  const auto addr = reinterpret_cast<uintptr_t>(w.data());
  const int64_t k = w.dim(1);
  switch (w.dtype()) {
    case DType::F32:
    case DType::F16:
    case DType::BF16: return w.stride(1) == 1 && k % 8 == 0 && addr % 16 == 0 && row_bytes % 16 == 0;
    case DType::Q4_K: return addr % 16 == 0;
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q6_K: return addr % 2 == 0;
    default: return false;
  }
}

template <class T>
void gemv(const Tensor& x, const Tensor& w, int64_t row_bytes, const float* bias, const Tensor& out,
          cudaStream_t stream) {
  const auto* pw = static_cast<const uint8_t*>(w.data());
  switch (w.dtype()) {
    case DType::F32: launch_gemv<DecF32, T>(x, pw, row_bytes, bias, out, stream); break;
    case DType::F16: launch_gemv<DecHalf<false>, T>(x, pw, row_bytes, bias, out, stream); break;
    case DType::BF16: launch_gemv<DecHalf<true>, T>(x, pw, row_bytes, bias, out, stream); break;
    case DType::Q8_0: launch_gemv<DecQ8_0, T>(x, pw, row_bytes, bias, out, stream); break;
    case DType::Q4_0: launch_gemv<DecQ4_0, T>(x, pw, row_bytes, bias, out, stream); break;
    case DType::Q4_K: launch_gemv<DecQ4_K, T>(x, pw, row_bytes, bias, out, stream); break;
    case DType::Q6_K: launch_gemv<DecQ6_K, T>(x, pw, row_bytes, bias, out, stream); break;
    default: fail(ErrorCode::Internal, "linear: no GEMV for ", name(w.dtype()));
  }
}

// ---- tile dequantization (large M): rows of blocks into dense T ----------------------------------------

template <class Block, class T>
__global__ void dequant_tile_kernel(const uint8_t* w, int64_t row_bytes, int64_t blocks_per_row, int64_t blocks,
                                    T* dst, int64_t k) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= blocks) return;
  const int64_t r = i / blocks_per_row, b = i - r * blocks_per_row;
  const auto* blk = reinterpret_cast<const Block*>(w + r * row_bytes) + b;
  float v[Block::kElements];
  dequantize_block(*blk, v);
  T* o = dst + r * k + b * Block::kElements;
#pragma unroll 8
  for (int j = 0; j < Block::kElements; ++j) o[j] = T(v[j]);
}

template <class T>
void dequant_tile(DType t, const uint8_t* w, int64_t row_bytes, int64_t rows, int64_t k, T* dst, cudaStream_t s) {
  const int64_t bpr = k / info(t).block_size, blocks = rows * bpr;
  const unsigned grid = static_cast<unsigned>((blocks + 255) / 256);
#define MTL_TILE(B) dequant_tile_kernel<B, T><<<grid, 256, 0, s>>>(w, row_bytes, bpr, blocks, dst, k)
  switch (t) {
    case DType::Q4_0: MTL_TILE(block_q4_0); break;
    case DType::Q4_1: MTL_TILE(block_q4_1); break;
    case DType::Q5_0: MTL_TILE(block_q5_0); break;
    case DType::Q5_1: MTL_TILE(block_q5_1); break;
    case DType::Q8_0: MTL_TILE(block_q8_0); break;
    case DType::Q8_1: MTL_TILE(block_q8_1); break;
    case DType::Q2_K: MTL_TILE(block_q2_K); break;
    case DType::Q3_K: MTL_TILE(block_q3_K); break;
    case DType::Q4_K: MTL_TILE(block_q4_K); break;
    case DType::Q5_K: MTL_TILE(block_q5_K); break;
    case DType::Q6_K: MTL_TILE(block_q6_K); break;
    case DType::Q8_K: MTL_TILE(block_q8_K); break;
    default: fail(ErrorCode::NotSupported, "linear: no CUDA decoder for ", name(t));
  }
#undef MTL_TILE
  MTL_CUDA_CHECK_LAUNCH("linear: dequant_tile_kernel");
}

template <class T>
__global__ void add_bias_kernel(T* out, const float* bias, int64_t m, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < m * n; i += int64_t{gridDim.x} * blockDim.x)
    out[i] = T(to_f(out[i]) + bias[i % n]);
}

template <class T>
void linear_typed(const Tensor& x, const Tensor& weight, const float* bias, const Tensor& out, cudaStream_t s) {
  const int64_t m = x.dim(0), k = x.dim(1), n = weight.dim(0);
  const DType wt = weight.dtype();
  const int64_t row_bytes = is_quantized(wt) ? storage_bytes(wt, weight.stride(0))
                                             : weight.stride(0) * element_size(wt);
  if (m <= 8 && k <= (int64_t{1} << 30) && n < (int64_t{1} << 31) && gemv_supported(weight, row_bytes)) {
    gemv<T>(x, weight, row_bytes, bias, out, s);
    return;
  }
  if (wt == out.dtype()) {  // dense weight in x's dtype: one GEMM on the transposed view
    cuda::matmul(x.unsqueeze(0), weight.transpose(0, 1).unsqueeze(0), out.unsqueeze(0), 1.f, 0.f);
  } else {
    // Dequantize (or convert) at most 64 MiB of weight rows at a time into x's dtype, then GEMM.
    const int64_t es = element_size(out.dtype());
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(n, (int64_t{64} << 20) / (k * es)));
    MemoryPool& pool = out.context()->pool();
    const MemoryPool::Mark mark = pool.mark();
    Tensor scratch = Tensor::empty(out.context(), {chunk, k}, out.dtype(), Storage::Pool);
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
      const int64_t rows = std::min(chunk, n - r0);
      Tensor tile = scratch.narrow(0, 0, rows);
      if (is_quantized(wt))
        dequant_tile<T>(wt, static_cast<const uint8_t*>(weight.data()) + r0 * row_bytes, row_bytes, rows, k,
                        tile.data_as<T>(), s);
      else
        metallic::copy(weight.narrow(0, r0, rows), tile);
      cuda::matmul(x.unsqueeze(0), tile.transpose(0, 1).unsqueeze(0), out.narrow(1, r0, rows).unsqueeze(0), 1.f, 0.f);
    }
    pool.release(mark);  // stream order makes the scratch reusable by later work on this stream
  }
  if (bias) add_bias_kernel<T><<<blocks_for(m * n, 256), 256, 0, s>>>(out.data_as<T>(), bias, m, n);
  MTL_CUDA_CHECK_LAUNCH("linear: add_bias_kernel");
}

// ---- embedding ------------------------------------------------------------------------------------------

template <class T>
__global__ void embedding_kernel(DType tt, const uint8_t* table, int64_t row_bytes, int64_t col_stride_bytes,
                                 int64_t v, const int32_t* ids, int64_t d, T* out) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  T* o = out + t * d;
  const bool valid = id >= 0 && id < v;
  const uint8_t* row = table + (valid ? id : 0) * row_bytes;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    float val = 0.f;
    if (valid) {
      switch (tt) {
        case DType::F32: val = *reinterpret_cast<const float*>(row + j * col_stride_bytes); break;
        case DType::F16: val = f16_to_f32(ld16(row + j * col_stride_bytes)); break;
        case DType::BF16: val = bf16_to_f32(ld16(row + j * col_stride_bytes)); break;
        case DType::Q8_0: {
          const uint8_t* b = row + (j >> 5) * 34;
          val = f16_to_f32(ld16(b)) * static_cast<float>(static_cast<int8_t>(b[2 + (j & 31)]));
          break;
        }
        case DType::Q4_0: {
          const uint8_t* b = row + (j >> 5) * 18;
          const int e = static_cast<int>(j & 31);
          const int q = e < 16 ? (b[2 + e] & 0xf) : (b[2 + e - 16] >> 4);
          val = f16_to_f32(ld16(b)) * static_cast<float>(q - 8);
          break;
        }
        default: break;
      }
    }
    o[j] = T(val);
  }
}

// Same dtype, dense 16-byte-aligned rows: a vectorised row copy (zeros for ids outside the table).
__global__ void embedding_copy_kernel(const uint8_t* table, int64_t row_bytes, int64_t v, const int32_t* ids,
                                      int64_t vecs, uint4* out) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  const bool valid = id >= 0 && id < v;
  const uint4* row = reinterpret_cast<const uint4*>(table + (valid ? id : 0) * row_bytes);
  for (int64_t j = threadIdx.x; j < vecs; j += blockDim.x) out[t * vecs + j] = valid ? __ldg(row + j) : make_uint4(0, 0, 0, 0);
}

}  // namespace

void linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out) {
  cudaStream_t s = stream_of(out);
  Tensor b32;
  if (bias.defined()) b32 = bias.dtype() == DType::F32 && bias.is_contiguous() ? bias : metallic::cast(bias, DType::F32);
  const float* pb = bias.defined() ? b32.data_as<float>() : nullptr;
  switch (out.dtype()) {
    case DType::F32: linear_typed<float>(x, weight, pb, out, s); break;
    case DType::F16: linear_typed<f16>(x, weight, pb, out, s); break;
    case DType::BF16: linear_typed<bf16>(x, weight, pb, out, s); break;
    default: fail(ErrorCode::NotSupported, "linear: dtype ", name(out.dtype()));
  }
}

void embedding(const Tensor& table, const Tensor& ids, const Tensor& out) {
  cudaStream_t s = stream_of(out);
  const DType tt = table.dtype();
  const int64_t row_bytes = is_quantized(tt) ? storage_bytes(tt, table.stride(0)) : table.stride(0) * element_size(tt);
  const int64_t col_bytes = is_quantized(tt) ? 0 : table.stride(1) * element_size(tt);
  const int64_t t = ids.numel(), d = table.dim(1), v = table.dim(0);
  const auto* pt = static_cast<const uint8_t*>(table.data());
  const auto* pi = ids.data_as<int32_t>();
  check(t < (int64_t{1} << 31), ErrorCode::InvalidArgument, "embedding: too many ids");
  const unsigned grid = static_cast<unsigned>(t);
  const int64_t out_row_bytes = d * element_size(out.dtype());
  if (tt == out.dtype() && table.stride(1) == 1 && row_bytes % 16 == 0 && out_row_bytes % 16 == 0 &&
      reinterpret_cast<uintptr_t>(pt) % 16 == 0 && reinterpret_cast<uintptr_t>(out.data()) % 16 == 0) {
    embedding_copy_kernel<<<grid, 128, 0, s>>>(pt, row_bytes, v, pi, out_row_bytes / 16, static_cast<uint4*>(out.data()));
    MTL_CUDA_CHECK_LAUNCH("embedding: embedding_copy_kernel");
    return;
  }
  switch (out.dtype()) {
    case DType::F32: embedding_kernel<float><<<grid, 256, 0, s>>>(tt, pt, row_bytes, col_bytes, v, pi, d, out.data_as<float>()); break;
    case DType::F16: embedding_kernel<f16><<<grid, 256, 0, s>>>(tt, pt, row_bytes, col_bytes, v, pi, d, out.data_as<f16>()); break;
    case DType::BF16: embedding_kernel<bf16><<<grid, 256, 0, s>>>(tt, pt, row_bytes, col_bytes, v, pi, d, out.data_as<bf16>()); break;
    default: fail(ErrorCode::NotSupported, "embedding: dtype ", name(out.dtype()));
  }
  MTL_CUDA_CHECK_LAUNCH("embedding: embedding_kernel");
}

}  // namespace metallic::cuda
