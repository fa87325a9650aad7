// Softmax kernels every backend provides. Arguments arrive validated by src/ops: out has x's shape,
// dtype and device; x has rank >= 2 when options.causal is set.
#pragma once

#include "metallic/core/tensor.h"
#include "metallic/ops/softmax.h"

#define MTL_SOFTMAX_KERNELS \
  void softmax(const Tensor& x, const SoftmaxOptions& options, bool log, const Tensor& out);

namespace metallic::cpu {
MTL_SOFTMAX_KERNELS
}
namespace metallic::cuda {
MTL_SOFTMAX_KERNELS
}
#undef MTL_SOFTMAX_KERNELS
