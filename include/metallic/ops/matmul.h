// Dense matrix products (cuBLASLt on CUDA, OpenBLAS on the CPU) and the model's linear layer,
// which also takes GGUF-quantized weights.
#pragma once

#include "metallic/core/tensor.h"

namespace metallic {

/// How matmul combines its operands: out = alpha * op(a) @ op(b) + beta * out.
struct MatmulOptions {
  bool transpose_a = false;  ///< use a's last two dimensions swapped
  bool transpose_b = false;  ///< use b's last two dimensions swapped
  float alpha = 1.0f;
  float beta = 0.0f;  ///< scales out's previous contents (out variant only)
};

/// Batched product of a [..., M, K] and b [..., K, N] (after the optional transposes) giving [..., M, N];
/// leading batch dimensions broadcast. f32, f16, bf16 (same dtype for a and b), accumulated in f32.
/// Operands may be strided views (offsets, transposed inner strides, batch strides).
Tensor matmul(const Tensor& a, const Tensor& b, const MatmulOptions& options = {});
/// matmul into `out` ([..., M, N], the operands' dtype), honouring beta.
void matmul(const Tensor& a, const Tensor& b, const Tensor& out, const MatmulOptions& options = {});

/// y = x @ weight^T (+ bias): x [..., K] in f32/f16/bf16, weight [N, K] dense or any supported GGUF
/// block type (rows of K elements, as stored in GGUF with ne0 = K), bias [N] or undefined; y [..., N] in x's
/// dtype. Quantized weights are never expanded in device memory beyond a bounded scratch tile.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});
/// linear into `out` ([..., N], x's dtype).
void linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out);

}  // namespace metallic
