// Programmatic dependent launch (Hopper): a kernel launched this way may start while the kernel before it on
// the stream finishes, so a decode step's short kernels overlap their launch and prologue with their
// predecessor's tail. Every such kernel calls wait_for_producer() before it reads what earlier kernels
// wrote and before it writes anything; on older GPUs, and while kProgrammaticLaunch is off, both sides
// fall back to plain stream order.
#pragma once

#include <cuda_runtime.h>

#include "backend/cuda/check.h"

namespace metallic::cuda {

/// Blocks until the preceding kernel has finished and its writes are visible (a no-op unless launched
/// with launch_dependent on sm_90 or later).
__device__ __forceinline__ void wait_for_producer() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/// Lets the next kernel, if launched with launch_dependent, start now (its wait still waits for all of
/// this kernel).
__device__ __forceinline__ void allow_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}

/// Whether launch_dependent() launches kernels as programmatic dependents. Off: with it on, greedy decoding
/// on an H200 left the CPU reference within a few tokens, differently from run to run (synthetic
/// Qwen2.5-shape 0.5B f16 and q4_0, 7B q4_0 and q8_0 files), and with it off matched the reference token
/// for token; which read overtakes its producer is not known yet. The kernels keep their wait and trigger
/// points, which are no-ops without it. (Its speed, for when it is right: 7B q4_0 decode 643.3 against
/// 565.6 tok/s, 0.5B q4_0 1477.5 against 1174.0.)
constexpr bool kProgrammaticLaunch = false;

/// Launches `kernel` <<<grid, block, smem, s>>>, as a programmatic dependent of the previous kernel on `s`
/// under kProgrammaticLaunch, in clusters of `cluster_x` CTAs along x when that is more than 1 (compute
/// capability 9.0).
template <class... P, class... A>
void launch_dependent_clustered(unsigned cluster_x, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
                                cudaStream_t s, A... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[2];
  unsigned n = 0;
  if (kProgrammaticLaunch) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (cluster_x > 1) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n++].val.clusterDim = {cluster_x, 1, 1};
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  MTL_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, static_cast<P>(args)...));
}

/// Launches `kernel` <<<grid, block, smem, s>>> (a programmatic dependent of the previous kernel on `s` under
/// kProgrammaticLaunch).
template <class... P, class... A>
void launch_dependent(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, A... args) {
  launch_dependent_clustered(1, kernel, grid, block, smem, s, args...);
}

}  // namespace metallic::cuda
