// Token sampling kernels every backend provides, and the arithmetic both share so that they pick the same
// token. Arguments arrive validated by src/ops/sampling.cpp: logits f32 [V] dense, recent i32 [W] dense or
// undefined, draw i64 [1], out i32 [1].
#pragma once

#include <cmath>
#include <cstdint>

#include "backend/random.h"
#include "metallic/core/host_device.h"
#include "metallic/core/tensor.h"
#include "metallic/ops/sampling.h"

namespace metallic::backend {

/// A logit after the penalties for a token seen `count` times in the window (explicit fma: both backends
/// must round alike).
MTL_HOST_DEVICE inline float penalize(float v, int count, float repeat, float presence, float frequency) {
  v = v > 0 ? v / repeat : v * repeat;
  return v - fmaf(static_cast<float>(count), frequency, presence);
}

/// The Gumbel-max score of a kept candidate: its log-probability at the temperature (up to a shared
/// constant) plus Gumbel noise drawn for token `id` in the stream of (seed, draw).
MTL_HOST_DEVICE inline double gumbel_score(float logit, float top, float temperature, uint64_t seed,
                                           int64_t draw, int32_t id) {
  const uint64_t stream = mix64(seed ^ mix64(static_cast<uint64_t>(draw)));
  const double u = uniform01(stream, static_cast<uint64_t>(id));
  return static_cast<double>(logit - top) / static_cast<double>(temperature) - log(-log(u));
}

}  // namespace metallic::backend

#define MTL_SAMPLING_KERNELS                                                        \
  void sample_token(const Tensor& logits, const Tensor& recent, const Tensor& draw, \
                    const SamplingOptions& options, const Tensor& out);

namespace metallic::cpu {
MTL_SAMPLING_KERNELS
}
namespace metallic::cuda {
MTL_SAMPLING_KERNELS
}
#undef MTL_SAMPLING_KERNELS
