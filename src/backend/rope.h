// RoPE kernels every backend provides. Arguments arrive validated by src/ops: x and out are
// [batch, seq, heads, head_dim] of one dtype (out may be x); options.rotary_dims is resolved (even,
// 0 < rotary_dims <= head_dim); freq_factors is undefined or f32 [rotary_dims / 2] on x's device.
// rope_kv_write's arguments are checked as its public declaration states.
#pragma once

#include "metallic/core/tensor.h"
#include "metallic/ops/rope.h"

#define MTL_ROPE_KERNELS                                                                         \
  void rope(const Tensor& x, const RopeOptions& options, const Tensor& out);                     \
  void rope_kv_write(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions, \
                     const RopeOptions& options, const Tensor& q_out, const Tensor& k_cache,     \
                     const Tensor& v_cache);

namespace metallic::cpu {
MTL_ROPE_KERNELS
}
namespace metallic::cuda {
MTL_ROPE_KERNELS
}
#undef MTL_ROPE_KERNELS
