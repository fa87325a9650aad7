// Attention kernels every backend provides. Arguments arrive validated by src/ops: q [B, Hq, Sq, D], k and
// v [B, Hkv, Sk, D] in q's dtype with Hkv dividing Hq, out [B, Hq, Sq, D] in q's dtype or f32, all with the
// last dimension dense; `mask` is undefined or an f32 view already broadcast (stride 0) to [B, Hq, Sq, Sk];
// `key_lengths` is undefined or a contiguous i32 [B] on q's device; `scale` is final (never 0).
#pragma once

#include <cstdint>

#include "metallic/core/tensor.h"

#define MTL_ATTENTION_KERNELS                                                               \
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,     \
                 const Tensor& key_lengths, float scale, bool causal, int64_t query_offset, \
                 const Tensor& out);

namespace metallic::cpu {
MTL_ATTENTION_KERNELS
}
namespace metallic::cuda {
MTL_ATTENTION_KERNELS
}
#undef MTL_ATTENTION_KERNELS
