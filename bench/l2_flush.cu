// Emptying L2 between timed calls by reading a buffer several times its size. A read leaves L2 holding clean
// lines, as a decode step finds it (the previous kernel read weights and wrote little); overwriting the
// buffer instead would leave it full of dirty lines whose write-back the next timed call would pay for.
#include <cuda_runtime.h>

#include "backend/cuda/check.h"
#include "bench.h"

namespace metallic::bench {
namespace {

// Each block folds what it reads into one word, stored so the loads cannot be dropped.
__global__ void read_sweep(const uint4* __restrict__ p, size_t n, unsigned* __restrict__ sink) {
  unsigned acc = 0;
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n; i += size_t{gridDim.x} * blockDim.x) {
    const uint4 v = p[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  acc = __reduce_xor_sync(0xffffffffu, acc);
  if (threadIdx.x % 32 == 0) atomicXor(sink + blockIdx.x, acc);
}

}  // namespace

void evict_l2(const void* buffer, size_t bytes, void* stream) {
  constexpr int kBlocks = 1024, kThreads = 512;
  // The sums land past the swept bytes, in the buffer's last kilobytes.
  const size_t swept = bytes - kBlocks * sizeof(unsigned);
  auto* sink = reinterpret_cast<unsigned*>(static_cast<char*>(const_cast<void*>(buffer)) + swept);
  read_sweep<<<kBlocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<const uint4*>(buffer),
                                                                          swept / sizeof(uint4), sink);
  MTL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace metallic::bench
