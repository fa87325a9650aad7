// Device helpers shared by the dense and the quantized GEMV kernels.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

namespace metallic::cuda::gemv_detail {

/// A 16-byte load that bypasses L1 allocation: weights are read exactly once. It is a coherent load: through
/// the non-coherent path, weight rows that the kernel before had just written read stale under
/// programmatic dependent launch even after the wait (LinearMisc.WeightWrittenByTheOpJustBefore on an H200:
/// wrong rows in each of 10 runs, none with this load, at the same speed). It stays where it is written
/// relative to wait_for_producer() (volatile): as a plain asm of its address alone it could be moved above
/// the wait.
__device__ __forceinline__ uint4 ld_stream(const void* p) {
  uint4 v;
  asm volatile("ld.global.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

/// The f16 in the low 16 bits of `bits` as a float.
__device__ __forceinline__ float half_f(uint32_t bits) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
}

/// The SwiGLU epilogue: silu(gate) * up.
__device__ __forceinline__ float swiglu_of(float gate, float up) { return gate / (1.f + __expf(-gate)) * up; }

}  // namespace metallic::cuda::gemv_detail
