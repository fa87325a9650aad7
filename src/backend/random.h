// Counter-based random numbers: element i of a draw depends only on (seed, i), so the CPU and CUDA
// backends produce the same tensor for the same seed, in any order and any launch shape.
#pragma once

#include <cmath>
#include <cstdint>

#include "metallic/core/host_device.h"

namespace metallic::backend {

/// SplitMix64 finaliser over the counter: a fast bijective mix with good avalanche.
MTL_HOST_DEVICE inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// Uniform double in (0, 1) for stream position `i`, 53 random bits.
MTL_HOST_DEVICE inline double uniform01(uint64_t seed, uint64_t i) {
  const uint64_t bits = mix64(mix64(seed) ^ i) >> 11;
  return (static_cast<double>(bits) + 0.5) * 0x1.0p-53;
}

/// Standard normal for element `i` by Box-Muller on stream positions 2i and 2i+1.
MTL_HOST_DEVICE inline double normal01(uint64_t seed, uint64_t i) {
  const double u1 = uniform01(seed, 2 * i), u2 = uniform01(seed, 2 * i + 1);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

}  // namespace metallic::backend
