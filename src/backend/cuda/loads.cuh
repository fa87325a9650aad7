// Global loads for kernels launched as programmatic dependents (pdl.cuh).
//
// Such a kernel's blocks may be resident while the kernel before it still writes, and the same pool, KV
// and residual addresses are rewritten layer after layer. wait_for_producer() makes those writes visible to
// coherent loads only: through the non-coherent path (__ldg, ld.global.nc) an SM may keep serving a line it
// cached before the writes landed. On an H200 that gave wrong greedy tokens at 0.5B and 7B shapes, different
// from run to run, and weight rows written by the kernel just before read stale. So these kernels read
// every operand with the loads below. They are volatile asm: the compiler neither hoists them above the
// wait nor turns them into non-coherent loads, as it may for a plain read through `const __restrict__`.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

namespace metallic::cuda {

/// Loads the 2-, 4-, 8- or 16-byte value at `p` (aligned to its size) coherently, cached in L1.
template <class W>
__device__ __forceinline__ W ld_global(const void* p) {
  static_assert(sizeof(W) == 2 || sizeof(W) == 4 || sizeof(W) == 8 || sizeof(W) == 16);
  W v;
  if constexpr (sizeof(W) == 16) {
    uint4 u;
    asm volatile("ld.global.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(u.x), "=r"(u.y), "=r"(u.z), "=r"(u.w)
                 : "l"(p));
    memcpy(&v, &u, 16);
  } else if constexpr (sizeof(W) == 8) {
    uint2 u;
    asm volatile("ld.global.v2.u32 {%0, %1}, [%2];" : "=r"(u.x), "=r"(u.y) : "l"(p));
    memcpy(&v, &u, 8);
  } else if constexpr (sizeof(W) == 4) {
    uint32_t u;
    asm volatile("ld.global.u32 %0, [%1];" : "=r"(u) : "l"(p));
    memcpy(&v, &u, 4);
  } else {
    unsigned short u;
    asm volatile("ld.global.u16 %0, [%1];" : "=h"(u) : "l"(p));
    memcpy(&v, &u, 2);
  }
  return v;
}

/// Loads 16 bytes at `p` coherently without allocating in L1: for weights, which a kernel reads exactly once.
__device__ __forceinline__ uint4 ld_stream(const void* p) {
  uint4 v;
  asm volatile("ld.global.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

}  // namespace metallic::cuda
