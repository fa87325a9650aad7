// Device helpers shared by the dense and the quantized GEMV kernels.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

namespace metallic::cuda::gemv_detail {

/// A 16-byte load that bypasses L1 allocation: weights are read exactly once. It stays where it is written
/// relative to wait_for_producer() (volatile): as a plain asm of its address alone it could be moved above
/// the wait, and read weights that the kernel before is still writing.
__device__ __forceinline__ uint4 ld_stream(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
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
