// Device helpers shared by the dense and the quantized GEMV kernels.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "backend/cuda/loads.cuh"
#include "backend/cuda/pdl.cuh"

namespace metallic::cuda::gemv_detail {

/// Chunks per row and step that keep 8 16-byte loads in flight per thread, where one chunk of every row of a
/// block takes `loads` of them (1 when that is 8 or more).
constexpr int step_unroll(int loads) { return loads >= 8 ? 1 : 8 / loads; }

/// Runs a block's steps b = first, first + stride, ... below end: load(b, buf) issues one step's weight loads
/// into a Buf, use(b, buf) consumes them. The first step's loads go out before wait_for_producer(), so they
/// overlap the end of the kernel before (a caller whose weights that kernel may write waits first). With
/// Ahead the next step's loads are issued before the current step is used, so two steps stay in flight;
/// otherwise each step's loads are awaited in turn.
template <bool Ahead, class Buf, class Load, class Use>
__device__ __forceinline__ void stream_steps(int first, int end, int stride, const Load& load,
                                             const Use& use) {
  if constexpr (Ahead) {
    Buf cur, next;
    load(first, cur);
    wait_for_producer();
    for (int b = first; b < end; b += stride) {
      const bool more = b + stride < end;
      if (more) load(b + stride, next);
      use(b, cur);
      if (!more) break;
      cur = next;
    }
  } else {
    if (first >= end) wait_for_producer();
    for (int b = first; b < end; b += stride) {
      Buf buf;
      load(b, buf);
      if (b == first) wait_for_producer();
      use(b, buf);
    }
  }
}

/// bias[n], or 0 without a bias.
__device__ __forceinline__ float bias_at(const float* bias, int n) {
  return bias ? ld_global<float>(bias + n) : 0.f;
}

/// The f16 in the low 16 bits of `bits` as a float.
__device__ __forceinline__ float half_f(uint32_t bits) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
}

/// The SwiGLU epilogue: silu(gate) * up.
__device__ __forceinline__ float swiglu_of(float gate, float up) { return gate / (1.f + __expf(-gate)) * up; }

}  // namespace metallic::cuda::gemv_detail
