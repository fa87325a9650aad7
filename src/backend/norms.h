// Normalisation kernels every backend provides. Arguments arrive validated by src/ops: x, residual, sum
// and out share one shape [..., H], dtype and device; weight and bias are [H] (x's dtype or f32) or
// undefined.
#pragma once

#include "metallic/core/tensor.h"

#define MTL_NORM_KERNELS                                                                      \
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out);         \
  void add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, float eps, \
                    const Tensor& sum, const Tensor& normed);                                 \
  void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, const Tensor& out);

namespace metallic::cpu {
MTL_NORM_KERNELS
}
namespace metallic::cuda {
MTL_NORM_KERNELS
}
#undef MTL_NORM_KERNELS
