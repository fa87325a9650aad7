// Matrix-product, linear and embedding kernels every backend provides. Arguments arrive validated by
// src/ops/matmul.cpp and src/ops/embedding.cpp.
#pragma once

#include "metallic/core/tensor.h"

// matmul: a [B..., M, K], b [B..., K, N], out [B..., M, N] with identical batch shapes (broadcast batch
//   dimensions arrive as stride-0 views), one dense float dtype, M, N, K > 0; out = alpha a b + beta out
//   (beta == 0 never reads out). Any strides.
// linear: x [M, K] dense float with unit inner stride, weight [N, K] dense or block type with dense rows,
//   bias [N] dense float or undefined, out [M, N] contiguous in x's dtype.
// embedding: table [V, D] (dense rows), ids i32 contiguous [T], out [T, D] contiguous.
#define MTL_MATMUL_KERNELS                                                                   \
  void matmul(const Tensor& a, const Tensor& b, const Tensor& out, float alpha, float beta); \
  void linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out); \
  void embedding(const Tensor& table, const Tensor& ids, const Tensor& out);

namespace metallic::cpu {
MTL_MATMUL_KERNELS
}
namespace metallic::cuda {
MTL_MATMUL_KERNELS
}
#undef MTL_MATMUL_KERNELS
