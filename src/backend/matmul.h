// Matrix-product, linear, embedding and weight-regrouping kernels every backend provides. Arguments arrive
// validated by src/ops/matmul.cpp, src/ops/embedding.cpp and src/ops/group_blocks.cpp.
#pragma once

#include "metallic/core/tensor.h"

// matmul: a [B..., M, K], b [B..., K, N], out [B..., M, N] with identical batch shapes (broadcast batch
//   dimensions arrive as stride-0 views), one dense float dtype, M, N, K > 0; out = alpha a b + beta out
//   (beta == 0 never reads out). Any strides.
// linear: x [M, K] dense float with unit inner stride, weight [N, K] dense or block type with dense rows,
//   bias [N] dense float or undefined, out [M, N] contiguous in x's dtype.
// embedding: table [V, D] (dense rows), ids i32 contiguous [T], out [T, D] contiguous.
// group_blocks: w [N, K] Q4_0 or Q8_0, contiguous, K a multiple of 256, N K > 0; out contiguous, its grouped
//   dtype.
#define MTL_MATMUL_KERNELS                                                                   \
  void matmul(const Tensor& a, const Tensor& b, const Tensor& out, float alpha, float beta); \
  void linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out); \
  void embedding(const Tensor& table, const Tensor& ids, const Tensor& out);                 \
  void group_blocks(const Tensor& w, const Tensor& out);

namespace metallic::cpu {
MTL_MATMUL_KERNELS
}
namespace metallic::cuda {
MTL_MATMUL_KERNELS
}
#undef MTL_MATMUL_KERNELS
