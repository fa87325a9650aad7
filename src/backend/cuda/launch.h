// Launch helpers shared by the CUDA kernels: the context's stream and strided index arithmetic.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <cstdint>

#include "backend/cuda/check.h"
#include "backend/runtime.h"
#include "metallic/core/context.h"
#include "metallic/core/tensor.h"

namespace metallic::cuda {

/// The stream of the context that owns `t`, with that device made current.
inline cudaStream_t stream_of(const Tensor& t) {
  MTL_CUDA_CHECK(cudaSetDevice(t.device().index));
  return static_cast<cudaStream_t>(t.context()->native().stream);
}

/// Bytes from one row (dim 0) of a 2-D tensor to the next; whole blocks for block-quantized types.
inline int64_t row_stride_bytes(const Tensor& t) {
  return is_quantized(t.dtype()) ? storage_bytes(t.dtype(), t.stride(0))
                                 : t.stride(0) * element_size(t.dtype());
}

/// True when `p` sits on a 16-byte boundary, as 16-byte vector loads and stores need.
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

/// True when every row of `t` (each index of the dimensions before the last) starts on a 16-byte boundary,
/// as the vectorised kernels load it.
inline bool rows_aligned16(const Tensor& t) {
  if (!aligned16(t.data())) return false;
  const int64_t bytes = element_size(t.dtype());
  for (int dim = 0; dim + 1 < t.rank(); ++dim)
    if (t.dim(dim) > 1 && t.stride(dim) * bytes % 16 != 0) return false;
  return true;
}

/// Grid size for a grid-stride loop over `n` items with `threads` per block.
inline unsigned blocks_for(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

/// The current device's index.
inline int current_device() {
  int device = 0;
  MTL_CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

/// Compute capability of the current device as major * 10 + minor (90 on Hopper).
inline int compute_capability() {
  const int device = current_device();
  int major = 0, minor = 0;
  MTL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  MTL_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return 10 * major + minor;
}

/// Streaming multiprocessors of CUDA device `device`.
inline int sm_count(int device) {
  int n = 0;
  MTL_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
  return n;
}

/// Blocks of `kernel` (`threads` each, `smem` bytes of dynamic shared memory) that fit on the current device
/// at once. Callers ask once per kernel and keep the answer, so that later launches (a captured decode step
/// among them) make no runtime queries.
template <class Kernel>
unsigned resident_blocks(Kernel kernel, int threads, int smem) {
  const int sms = sm_count(current_device());
  int per_sm = 0;
  MTL_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
  return static_cast<unsigned>(sms * per_sm > 1 ? sms * per_sm : 1);
}

/// Shape plus the strides of N operands, passed to kernels by value.
template <int N>
struct Indexer {
  int rank;
  int64_t shape[kMaxDims];
  int64_t strides[N][kMaxDims];
  bool contiguous;  // every operand dense row-major: offsets equal the linear index

  /// Element offsets of row-major linear index `i` for each operand.
  __device__ void offsets(int64_t i, int64_t (&out)[N]) const {
    if (contiguous) {
      for (int k = 0; k < N; ++k) out[k] = i;
      return;
    }
    for (int k = 0; k < N; ++k) out[k] = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const int64_t idx = i % shape[d];
      i /= shape[d];
      for (int k = 0; k < N; ++k) out[k] += idx * strides[k][d];
    }
  }
};

/// An Indexer over `shape` for the given operands.
template <int N>
Indexer<N> make_indexer(const Shape& shape, const std::array<const Tensor*, N>& operands) {
  Indexer<N> ix{};
  ix.rank = shape.rank();
  ix.contiguous = true;
  for (int d = 0; d < shape.rank(); ++d) ix.shape[d] = shape[d];
  for (int k = 0; k < N; ++k) {
    const Tensor& t = *operands[static_cast<size_t>(k)];
    ix.contiguous = ix.contiguous && t.is_contiguous() && t.shape() == shape;
    for (int d = 0; d < shape.rank(); ++d) ix.strides[k][d] = t.stride(d);
  }
  return ix;
}

}  // namespace metallic::cuda
