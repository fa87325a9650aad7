// Counters in device memory that kernels leave at zero: a grid counts its finished blocks on one, the last
// block merges their partial results and puts the counter back, so a call needs no memset and a captured
// graph can replay it.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string_view>

#include "metallic/core/tensor.h"

namespace metallic::cuda {

/// At least `needed` zeroed int counters on `like`'s device, shared by every call that names the same
/// `owner`; allocated and zeroed on `stream` at the first call, kept in the context's resource cache.
int* zeroed_counters(const Tensor& like, int64_t needed, std::string_view owner, cudaStream_t stream);

/// Called by every thread of each of `blocks` blocks once the block's partial results are written: true in
/// the block that finishes last, whose threads then see every block's partials. That block finds the count at
/// blocks - 1 and puts the counter back to zero.
__device__ __forceinline__ bool last_block_to_finish(int* counter, int blocks) {
  __shared__ bool last;
  __threadfence();  // this block's partials are visible before its count is
  __syncthreads();
  if (threadIdx.x == 0) {
    last = atomicAdd(counter, 1) == blocks - 1;
    if (last) *counter = 0;
  }
  __syncthreads();
  if (last) __threadfence();
  return last;
}

}  // namespace metallic::cuda
