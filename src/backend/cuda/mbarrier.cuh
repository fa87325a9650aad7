// Shared-memory mbarriers and the tensor-map copies that complete on them (compute capability 9.0): the
// tensor-memory accelerator moves whole boxes into shared memory and counts their bytes on a barrier the
// consumers wait on, so no thread spends an instruction per 16 bytes. Addresses are shared-window offsets.
#pragma once

#include <cuda.h>

#include <cstdint>

namespace metallic::cuda {

/// The shared-window offset of a generic pointer into shared memory, as the instructions below take it.
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

/// Prepares the barrier at `bar` for `count` arrivals per phase.
__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count));
}
/// Arrives at `bar`, announcing `bytes` more that copies will complete on it this phase.
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, int bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
/// Arrives at `bar`.
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
/// Waits until the phase of `bar` with the given parity (0 for its first use, then alternating) completes.
__device__ __forceinline__ void mbar_wait(uint32_t bar, int parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
}
/// One box of a 4-D tensor map ([batch, head, row, column] from the outside in) into shared memory,
/// completing on `bar` (`dst` 128-byte aligned; 1024 for the 128-byte swizzle to start at row 0).
__device__ __forceinline__ void tma_load(uint32_t dst, const CUtensorMap* map, int col, int row, int head,
                                         int batch, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, "
      "%5}], [%6];" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(col), "r"(row), "r"(head), "r"(batch), "r"(bar)
      : "memory");
}

/// Orders this thread's earlier shared-memory accesses before its later tensor-map copies into that memory.
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

}  // namespace metallic::cuda
