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

/// True when fused_linear_rope_kv runs as one GEMV pass with the rotation and the cache writes in its
/// epilogue for `rows` tokens (`rope` resolved): weights the GEMV takes, whole-head rotation, D a multiple
/// of 8.
bool fused_linear_rope_kv_single_pass(const Tensor& weight, int64_t rows, const RopeOptions& rope,
                                      const RopeKvTargets& targets);
/// That pass, on arguments checked as fused_linear_rope_kv states (x [B * S, K] dense, targets.rope
/// resolved).
void fused_linear_rope_kv(const Tensor& x, const Tensor& weight, const Tensor& bias,
                          const FusedLinearOptions& o, const RopeKvTargets& targets);
}  // namespace metallic::cuda
#undef MTL_FUSED_LINEAR_KERNELS
