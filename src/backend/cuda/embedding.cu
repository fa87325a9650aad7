// Embedding gathers on CUDA: one block per id copies (or dequantizes) one table row.
#include "backend/cuda/launch.h"
#include "backend/matmul.h"
#include "metallic/core/half.h"

namespace metallic::cuda {
namespace {

__device__ __forceinline__ uint16_t ld16(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }

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

// Same dtype, dense 16-byte-aligned rows: a vectorised row copy by Threads threads (zeros for ids outside
// the table). Each thread issues all Unroll loads of its share of the row before its stores: the table and
// out may alias as far as the compiler knows, so it would not overlap them on its own.
template <int Threads, int Unroll>
__global__ void __launch_bounds__(Threads)
    embedding_copy_kernel(const uint8_t* table, int64_t row_bytes, int64_t v, const int32_t* ids,
                          int64_t vecs, uint4* out) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  const bool valid = id >= 0 && id < v;
  const uint4* row = reinterpret_cast<const uint4*>(table + (valid ? id : 0) * row_bytes);
  uint4* o = out + t * vecs;
  for (int64_t base = threadIdx.x; base < vecs; base += Threads * Unroll) {
    uint4 r[Unroll];
#pragma unroll
    for (int k = 0; k < Unroll; ++k) {
      const int64_t j = base + k * Threads;
      r[k] = valid && j < vecs ? __ldg(row + j) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int k = 0; k < Unroll; ++k) {
      const int64_t j = base + k * Threads;
      if (j < vecs) o[j] = r[k];
    }
  }
}

// 8 KiB per block in flight (a whole row of a 4096-wide bf16 table) with small blocks: a 4096-id batch then
// fits on an H100/H200 at once (32 blocks per SM).
constexpr int kCopyThreads = 64;
constexpr int kCopyUnroll = 8;

}  // namespace

void embedding(const Tensor& table, const Tensor& ids, const Tensor& out) {
  cudaStream_t s = stream_of(out);
  const DType tt = table.dtype();
  const int64_t row_bytes =
      is_quantized(tt) ? storage_bytes(tt, table.stride(0)) : table.stride(0) * element_size(tt);
  const int64_t col_bytes = is_quantized(tt) ? 0 : table.stride(1) * element_size(tt);
  const int64_t t = ids.numel(), d = table.dim(1), v = table.dim(0);
  const auto* pt = static_cast<const uint8_t*>(table.data());
  const auto* pi = ids.data_as<int32_t>();
  check(t < (int64_t{1} << 31), ErrorCode::InvalidArgument, "embedding: too many ids");
  const unsigned grid = static_cast<unsigned>(t);
  const int64_t out_row_bytes = d * element_size(out.dtype());
  if (tt == out.dtype() && table.stride(1) == 1 && row_bytes % 16 == 0 && out_row_bytes % 16 == 0 &&
      reinterpret_cast<uintptr_t>(pt) % 16 == 0 && reinterpret_cast<uintptr_t>(out.data()) % 16 == 0) {
    embedding_copy_kernel<kCopyThreads, kCopyUnroll><<<grid, kCopyThreads, 0, s>>>(
        pt, row_bytes, v, pi, out_row_bytes / 16, static_cast<uint4*>(out.data()));
    MTL_CUDA_CHECK_LAUNCH("embedding: embedding_copy_kernel");
    return;
  }
  switch (out.dtype()) {
    case DType::F32:
      embedding_kernel<float>
          <<<grid, 256, 0, s>>>(tt, pt, row_bytes, col_bytes, v, pi, d, out.data_as<float>());
      break;
    case DType::F16:
      embedding_kernel<f16><<<grid, 256, 0, s>>>(tt, pt, row_bytes, col_bytes, v, pi, d, out.data_as<f16>());
      break;
    case DType::BF16:
      embedding_kernel<bf16>
          <<<grid, 256, 0, s>>>(tt, pt, row_bytes, col_bytes, v, pi, d, out.data_as<bf16>());
      break;
    default: fail(ErrorCode::NotSupported, "embedding: dtype ", name(out.dtype()));
  }
  MTL_CUDA_CHECK_LAUNCH("embedding: embedding_kernel");
}

}  // namespace metallic::cuda
