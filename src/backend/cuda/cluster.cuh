// Thread-block clusters (compute capability 9.0): the CTAs of a cluster run at once on one GPC and read
// each other's shared memory, so partial results can meet there instead of in device memory, with a
// cluster barrier in place of a fence, an atomic counter and L2 round trips.
#pragma once

#include <cstdint>

#include "backend/cuda/mbarrier.cuh"

namespace metallic::cuda {

/// Waits until every thread of the cluster has arrived; shared-memory writes before it are visible to the
/// cluster's reads after it.
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}

/// The cluster shared-memory address of the location `local` has in the cluster's CTA `rank`.
__device__ __forceinline__ uint32_t cluster_addr(const float* local, int rank) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(smem_addr(local)), "r"(rank));
  return remote;
}

/// The float at the same shared-memory location as `local` in the cluster's CTA `rank`.
__device__ __forceinline__ float ld_cluster(const float* local, int rank) {
  float v;
  asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(cluster_addr(local, rank)) : "memory");
  return v;
}

/// The four floats at the same shared-memory location as `local` (16-byte aligned) in the cluster's CTA
/// `rank`.
__device__ __forceinline__ float4 ld_cluster4(const float* local, int rank) {
  const uint32_t remote = cluster_addr(local, rank);
  float4 v;
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(remote)
               : "memory");
  return v;
}

}  // namespace metallic::cuda
