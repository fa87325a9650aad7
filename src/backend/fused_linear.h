// The fused linear kernel every backend provides. Arguments arrive validated by src/ops/fused_linear.cpp:
// x [M, K] (K > 0) dense float with unit inner stride; weight [N, K] and bias as for linear; the norm weight
// [K] in f32 or x's dtype, or undefined; out [M, N] ([M, N / 2] for SwiGLU) contiguous in x's dtype, not
// overlapping x.
#pragma once

#include "metallic/ops/fused_linear.h"

#define MTL_FUSED_LINEAR_KERNELS                                                                            \
  void fused_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const FusedLinearOptions& o, \
                    const Tensor& out);                                                                     \
  bool fused_linear_single_pass(const Tensor& weight, int64_t rows);

namespace metallic::cpu {
MTL_FUSED_LINEAR_KERNELS
}
namespace metallic::cuda {
MTL_FUSED_LINEAR_KERNELS
}
#undef MTL_FUSED_LINEAR_KERNELS
