// y = x W^T + b on CUDA. For at most 8 rows of x the fused dequantize-GEMV of gemv.cu reads each weight
// byte once. Larger batches dequantize bounded tiles of W (16 to 64 MiB, from the context's pool, a
// multiple of 256 rows so that every tile's slice of the output stays 16-byte aligned for cuBLASLt's fast
// kernels) into x's dtype (f16 when x is f32 and W is not) and run cuBLASLt on them.
#include <algorithm>

#include "backend/cuda/gemv.h"
#include "backend/cuda/launch.h"
#include "backend/cuda/matmul_lt.h"
#include "backend/matmul.h"
#include "metallic/core/memory_pool.h"
#include "metallic/model/quant_blocks.h"
#include "metallic/ops/copy.h"

namespace metallic::cuda {
namespace {

using namespace metallic::quant;

// Tiles of W hold a multiple of this many rows: the output slice of every tile then starts 16-byte aligned.
constexpr int64_t kTileRowAlign = 256;

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(f16 v) { return f16_to_f32(v.bits); }
__device__ __forceinline__ float to_f(bf16 v) { return bf16_to_f32(v.bits); }

// ---- tile dequantization (large M): rows of blocks into dense T ----------------------------------------
// The common types decode 8 consecutive elements per thread and store them as one 16-byte vector, so a
// warp writes 512 contiguous bytes and reads a contiguous run of blocks: the tile costs one pass over W
// and one over the tile at memory speed. Other types take one thread per block.

__device__ __forceinline__ uint32_t ld_u16(const uint8_t* p) {  // blocks are only 2-byte aligned
  return __ldg(reinterpret_cast<const unsigned short*>(p));
}
// 8 bytes at a 2-byte aligned address, as two words.
__device__ __forceinline__ void ld_8(const uint8_t* p, uint32_t (&w)[2]) {
  w[0] = ld_u16(p) | (ld_u16(p + 2) << 16);
  w[1] = ld_u16(p + 4) | (ld_u16(p + 6) << 16);
}
__device__ __forceinline__ float f16_at(const uint8_t* p) {
  return f16_to_f32(static_cast<uint16_t>(ld_u16(p)));
}
__device__ __forceinline__ int byte_of(const uint32_t (&w)[2], int i) {
  return (w[i >> 2] >> (8 * (i & 3))) & 0xff;
}

// Each decoder: kElements per block, decode8(block, i, v) = elements 8i..8i+7, bit for bit as the CPU.
// Eight Q8_0 quants at q times the f16 scale at d.
__device__ __forceinline__ void q8_0_decode8(const uint8_t* d, const uint8_t* q, float (&v)[8]) {
  const float s = f16_at(d);
  uint32_t w[2];
  ld_8(q, w);
#pragma unroll
  for (int j = 0; j < 8; ++j) v[j] = mul(static_cast<float>(static_cast<int8_t>(byte_of(w, j))), s);
}
// The nibbles at `shift` (0: low, 4: high) of the eight Q4_0 quant bytes at q, times the f16 scale at d.
__device__ __forceinline__ void q4_0_decode8(const uint8_t* d, const uint8_t* q, int shift, float (&v)[8]) {
  const float s = f16_at(d);
  uint32_t w[2];
  ld_8(q, w);
#pragma unroll
  for (int j = 0; j < 8; ++j) v[j] = mul(static_cast<float>(((byte_of(w, j) >> shift) & 0xF) - 8), s);
}

struct Deq8_Q8_0 {
  static constexpr int kElements = 32, kBytes = sizeof(block_q8_0);
  __device__ static void decode8(const uint8_t* b, int i, float (&v)[8]) {
    q8_0_decode8(b, b + 2 + 8 * i, v);
  }
};
struct Deq8_Q4_0 {  // elements 0..15: low nibbles of qs[0..15]; 16..31: high nibbles
  static constexpr int kElements = 32, kBytes = sizeof(block_q4_0);
  __device__ static void decode8(const uint8_t* b, int i, float (&v)[8]) {
    q4_0_decode8(b, b + 2 + 8 * (i & 1), 4 * (i >> 1), v);
  }
};
// The grouped types: block k's scale at 2k, its quants at 16 + (quant bytes) k, laid out as in the base type.
struct Deq8_Q8_0X8 {
  static constexpr int kElements = 256, kBytes = sizeof(block_q8_0x8);
  __device__ static void decode8(const uint8_t* b, int i, float (&v)[8]) {
    q8_0_decode8(b + 2 * (i >> 2), b + 16 + 32 * (i >> 2) + 8 * (i & 3), v);
  }
};
struct Deq8_Q4_0X8 {
  static constexpr int kElements = 256, kBytes = sizeof(block_q4_0x8);
  __device__ static void decode8(const uint8_t* b, int i, float (&v)[8]) {
    q4_0_decode8(b + 2 * (i >> 2), b + 16 + 16 * (i >> 2) + 8 * (i & 1), 4 * ((i >> 1) & 1), v);
  }
};
struct Deq8_Q4_K {  // 64 elements per 32 quant bytes: low nibbles group 2c, high nibbles group 2c + 1
  static constexpr int kElements = 256, kBytes = sizeof(block_q4_K);
  __device__ static void decode8(const uint8_t* b, int i, float (&v)[8]) {
    const int e = 8 * i, c = e / 64, hi = (e / 32) & 1, col = e & 31;
    const float d = f16_at(b), dmin = f16_at(b + 2);
    uint8_t sc6[12];
#pragma unroll
    for (int j = 0; j < 6; ++j) {
      const uint32_t h = ld_u16(b + 4 + 2 * j);
      sc6[2 * j] = static_cast<uint8_t>(h), sc6[2 * j + 1] = static_cast<uint8_t>(h >> 8);
    }
    uint8_t sc, m;
    get_scale_min_k4(2 * c + hi, sc6, sc, m);
    const float d1 = mul(d, sc), m1 = mul(dmin, m);
    uint32_t w[2];
    ld_8(b + 16 + 32 * c + col, w);
#pragma unroll
    for (int j = 0; j < 8; ++j)
      v[j] = sub(mul(d1, static_cast<float>((byte_of(w, j) >> (4 * hi)) & 0xF)), m1);
  }
};
struct Deq8_Q6_K {  // per half of 128: element 32p + l from ql[l + 32 (p & 1)] (nibble p >> 1), qh[l] (bits
                    // 2p)
  static constexpr int kElements = 256, kBytes = sizeof(block_q6_K);
  __device__ static void decode8(const uint8_t* b, int i, float (&v)[8]) {
    const int e = 8 * i, h = e / 128, p = (e / 32) & 3, col = e & 31;
    const float d = f16_at(b + 208);
    const int8_t s = static_cast<int8_t>(b[192 + 8 * h + col / 16 + 2 * p]);
    const float ds = mul(d, static_cast<float>(s));
    uint32_t ql[2], qh[2];
    ld_8(b + 64 * h + 32 * (p & 1) + col, ql);
    ld_8(b + 128 + 32 * h + col, qh);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int q = ((byte_of(ql, j) >> (4 * (p >> 1))) & 0xF) | (((byte_of(qh, j) >> (2 * p)) & 3) << 4);
      v[j] = mul(ds, static_cast<float>(q - 32));
    }
  }
};

template <class D, class T>
__global__ void dequant8_kernel(const uint8_t* __restrict__ w, int64_t row_bytes, uint32_t pieces_per_row,
                                uint32_t pieces, T* __restrict__ dst, int64_t k) {
  const uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= pieces) return;
  const uint32_t r = i / pieces_per_row, p = i - r * pieces_per_row;
  constexpr uint32_t kPerBlock = D::kElements / 8;
  float v[8];
  D::decode8(w + r * row_bytes + static_cast<int64_t>(p / kPerBlock) * D::kBytes, p % kPerBlock, v);
  uint32_t o[4];
#pragma unroll
  for (int q = 0; q < 4; ++q)
    o[q] = static_cast<uint32_t>(T(v[2 * q]).bits) | static_cast<uint32_t>(T(v[2 * q + 1]).bits) << 16;
  *reinterpret_cast<uint4*>(dst + r * k + 8 * static_cast<int64_t>(p)) = make_uint4(o[0], o[1], o[2], o[3]);
}

template <class Block, class T>
__global__ void dequant_tile_kernel(const uint8_t* w, int64_t row_bytes, int64_t blocks_per_row,
                                    int64_t blocks, T* dst, int64_t k) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= blocks) return;
  const int64_t r = i / blocks_per_row, b = i - r * blocks_per_row;
  const auto* blk = reinterpret_cast<const Block*>(w + r * row_bytes) + b;
  float v[Block::kElements];
  dequantize_block(*blk, v);
  T* o = dst + r * k + b * Block::kElements;
  if constexpr (sizeof(T) == 2) {
    // 16-byte stores: a warp's scalar 2-byte stores at a block's stride would each touch 32 sectors.
    static_assert(Block::kElements % 8 == 0);
    if ((reinterpret_cast<uintptr_t>(o) & 15) == 0) {
#pragma unroll 4
      for (int j = 0; j < Block::kElements; j += 8) {
        uint32_t w[4];
#pragma unroll
        for (int q = 0; q < 4; ++q)
          w[q] = static_cast<uint32_t>(T(v[j + 2 * q]).bits) | static_cast<uint32_t>(T(v[j + 2 * q + 1]).bits)
                                                                   << 16;
        *reinterpret_cast<uint4*>(o + j) = make_uint4(w[0], w[1], w[2], w[3]);
      }
      return;
    }
  }
#pragma unroll 8
  for (int j = 0; j < Block::kElements; ++j) o[j] = T(v[j]);
}

template <class T>
void dequant_tile(DType t, const uint8_t* w, int64_t row_bytes, int64_t rows, int64_t k, T* dst,
                  cudaStream_t s) {
  const int64_t bpr = k / info(t).block_size, blocks = rows * bpr;
  const unsigned grid = static_cast<unsigned>((blocks + 255) / 256);
  // At most 64 MiB of 2-byte elements: the piece count fits 32 bits.
  const auto ppr = static_cast<uint32_t>(k / 8), pieces = static_cast<uint32_t>(rows * (k / 8));
  const unsigned grid8 = (pieces + 255) / 256;
#define MTL_TILE(B) dequant_tile_kernel<B, T><<<grid, 256, 0, s>>>(w, row_bytes, bpr, blocks, dst, k)
#define MTL_TILE8(D, B)                                                             \
  if constexpr (sizeof(T) == 2)                                                     \
    dequant8_kernel<D, T><<<grid8, 256, 0, s>>>(w, row_bytes, ppr, pieces, dst, k); \
  else                                                                              \
    MTL_TILE(B)
  switch (t) {
    case DType::Q4_0: MTL_TILE8(Deq8_Q4_0, block_q4_0); break;
    case DType::Q4_1: MTL_TILE(block_q4_1); break;
    case DType::Q5_0: MTL_TILE(block_q5_0); break;
    case DType::Q5_1: MTL_TILE(block_q5_1); break;
    case DType::Q8_0: MTL_TILE8(Deq8_Q8_0, block_q8_0); break;
    case DType::Q8_1: MTL_TILE(block_q8_1); break;
    case DType::Q2_K: MTL_TILE(block_q2_K); break;
    case DType::Q3_K: MTL_TILE(block_q3_K); break;
    case DType::Q4_K: MTL_TILE8(Deq8_Q4_K, block_q4_K); break;
    case DType::Q5_K: MTL_TILE(block_q5_K); break;
    case DType::Q6_K: MTL_TILE8(Deq8_Q6_K, block_q6_K); break;
    case DType::Q8_K: MTL_TILE(block_q8_K); break;
    case DType::Q4_0X8: MTL_TILE8(Deq8_Q4_0X8, block_q4_0x8); break;
    case DType::Q8_0X8: MTL_TILE8(Deq8_Q8_0X8, block_q8_0x8); break;
    default: fail(ErrorCode::NotSupported, "linear: no CUDA decoder for ", name(t));
  }
#undef MTL_TILE
#undef MTL_TILE8
  MTL_CUDA_CHECK_LAUNCH("linear: dequant_tile_kernel");
}

template <class T>
__global__ void add_bias_kernel(T* out, const float* bias, int64_t m, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < m * n;
       i += int64_t{gridDim.x} * blockDim.x)
    out[i] = T(to_f(out[i]) + bias[i % n]);
}

template <class T>
void linear_typed(const Tensor& x, const Tensor& weight, const float* bias, const Tensor& out,
                  cudaStream_t s) {
  const int64_t m = x.dim(0), k = x.dim(1), n = weight.dim(0);
  const DType wt = weight.dtype();
  const int64_t row_bytes = row_stride_bytes(weight);
  if (gemv_takes(weight, m)) {
    gemv(x, weight, bias, out, s);
    return;
  }
  if (wt == x.dtype()) {  // dense weight in x's dtype: one GEMM on the transposed view
    cuda::matmul(x.unsqueeze(0), weight.transpose(0, 1).unsqueeze(0), out.unsqueeze(0), 1.f, 0.f);
  } else {
    // Dequantize (or convert) a bounded tile of weight rows at a time into x's dtype, then GEMM. The budget
    // is a quarter of the converted matrix, within [16, 64] MiB: large matrices keep few large GEMMs, and a
    // small model's scratch stays small next to its weights.
    const int64_t es = element_size(x.dtype());
    const int64_t budget = std::clamp<int64_t>(n * k * es / 4, int64_t{16} << 20, int64_t{64} << 20);
    // As few tiles as fit the budget, of equal size (a small last tile would be an inefficient GEMM).
    const int64_t rows_fit =
        std::max<int64_t>(kTileRowAlign, budget / (k * es) / kTileRowAlign * kTileRowAlign);
    const int64_t tiles = (n + rows_fit - 1) / rows_fit;
    const int64_t even = ((n + tiles - 1) / tiles + kTileRowAlign - 1) / kTileRowAlign * kTileRowAlign;
    const int64_t chunk = std::min<int64_t>(n, even);
    MemoryPool& pool = out.context()->pool();
    const MemoryPool::Mark mark = pool.mark();
    Tensor scratch = Tensor::empty(out.context(), {chunk, k}, x.dtype(), Storage::Pool);
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
      const int64_t rows = std::min(chunk, n - r0);
      Tensor tile = scratch.narrow(0, 0, rows);
      if (is_quantized(wt))
        dequant_tile<T>(wt, static_cast<const uint8_t*>(weight.data()) + r0 * row_bytes, row_bytes, rows, k,
                        tile.data_as<T>(), s);
      else
        metallic::copy(weight.narrow(0, r0, rows), tile);
      cuda::matmul(x.unsqueeze(0), tile.transpose(0, 1).unsqueeze(0), out.narrow(1, r0, rows).unsqueeze(0),
                   1.f, 0.f);
    }
    pool.release(mark);  // stream order makes the scratch reusable by later work on this stream
  }
  if (!bias) return;
  if (out.dtype() == DType::F32)
    add_bias_kernel<float><<<blocks_for(m * n, 256), 256, 0, s>>>(out.data_as<float>(), bias, m, n);
  else
    add_bias_kernel<T><<<blocks_for(m * n, 256), 256, 0, s>>>(out.data_as<T>(), bias, m, n);
  MTL_CUDA_CHECK_LAUNCH("linear: add_bias_kernel");
}

}  // namespace

void linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out) {
  cudaStream_t s = stream_of(out);
  Tensor b32;
  if (bias.defined())
    b32 = bias.dtype() == DType::F32 && bias.is_contiguous() ? bias : metallic::cast(bias, DType::F32);
  const float* pb = bias.defined() ? b32.data_as<float>() : nullptr;
  if (out.dtype() == DType::F32 && weight.dtype() != DType::F32 && x.dim(0) > kGemvMaxRows) {
    // f32 activations against f16, bf16 or quantized weights: run the GEMM on the tensor cores in f16
    // (f32 accumulation, f32 output) rather than as an f32 GEMM, which is an order of magnitude slower. The
    // weights' own precision (at most 11 significant bits) already bounds the result's; x is rounded to
    // f16 once.
    MemoryPool& pool = out.context()->pool();
    const MemoryPool::Mark mark = pool.mark();
    const Tensor x16 = Tensor::empty(out.context(), x.shape(), DType::F16, Storage::Pool);
    metallic::copy(x, x16);
    linear_typed<f16>(x16, weight, pb, out, s);
    pool.release(mark);
    return;
  }
  switch (out.dtype()) {
    case DType::F32: linear_typed<float>(x, weight, pb, out, s); break;
    case DType::F16: linear_typed<f16>(x, weight, pb, out, s); break;
    case DType::BF16: linear_typed<bf16>(x, weight, pb, out, s); break;
    default: fail(ErrorCode::NotSupported, "linear: dtype ", name(out.dtype()));
  }
}

}  // namespace metallic::cuda
