// Q4_0 and Q8_0 weights regrouped for the CUDA GEMV: eight blocks with their scales gathered in front make
// every block's quants one aligned 16-byte vector (quant::block_q4_0x8), which GGUF's 18- and 34-byte blocks
// never are.
#pragma once

#include "metallic/core/tensor.h"

namespace metallic {

/// True when group_blocks() takes `w`: a [N, K] Q4_0 or Q8_0 matrix with dense rows and K a multiple of 256.
bool can_group_blocks(const Tensor& w);

/// `w` as a new [N, K] tensor of quant::grouped_dtype(w.dtype()) on w's device: the same bytes reordered
/// within each group of eight blocks, so every op decodes the same values. Raises NotSupported for other
/// dtypes and InvalidArgument for other shapes or strides.
Tensor group_blocks(const Tensor& w);

}  // namespace metallic
