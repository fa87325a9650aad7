// The rotation angles of RoPE on CUDA, shared by the rope kernels and the fused q/k/v projection: each pair's
// frequency in double, and its sine and cosine at a position with the angle reduced to [-pi, pi] in double,
// so positions in the tens of thousands keep f32 accuracy.
#pragma once

#include <cmath>
#include <cstdint>

#include "metallic/ops/rope.h"

namespace metallic::cuda {

/// The frequencies of a rotation: pair i turns by position * theta^(-i / half) / factors[i].
struct RopeFrequencies {
  double neg_log2_theta_over_half;  ///< -log2(theta) / half
  const float* factors;             ///< f32 divisors (stride factor_stride), null: ones
  int64_t factor_stride;

  /// 1 / the wavelength of pair i, in radians per position.
  __device__ __forceinline__ double inv_freq(int64_t i) const {
    double f = exp2(static_cast<double>(i) * neg_log2_theta_over_half);
    if (factors) f /= static_cast<double>(factors[i * factor_stride]);
    return f;
  }
};

/// The frequencies of `options` (rotary_dims resolved) for kernels on the device.
inline RopeFrequencies rope_frequencies(const RopeOptions& options) {
  const int64_t half = options.rotary_dims / 2;
  const bool factors = options.freq_factors.defined();
  return {-std::log2(static_cast<double>(options.theta)) / static_cast<double>(half),
          factors ? options.freq_factors.data_as<float>() : nullptr,
          factors ? options.freq_factors.stride(0) : 0};
}

/// Sine and cosine of position * inv_freq (__sincosf on the reduced angle: absolute error about 4e-7).
__device__ __forceinline__ void rope_sincos(double position, double inv_freq, float* s, float* c) {
  const double angle = position * inv_freq;
  const double reduced = angle - rint(angle * 0.15915494309189535) * 6.283185307179586;
  __sincosf(static_cast<float>(reduced), s, c);
}

}  // namespace metallic::cuda
