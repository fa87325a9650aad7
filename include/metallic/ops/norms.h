// Normalisations over the last dimension, computed in f32 whatever the storage dtype.
#pragma once

#include "metallic/core/tensor.h"

namespace metallic {

/// x / sqrt(mean(x^2) + eps) * weight over the last dimension of x [..., H]; weight [H] or undefined (ones).
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps);
/// rms_norm into `out` (x's shape and dtype).
void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out);

/// The transformer's residual step in one pass: sum = x + residual, normed = rms_norm(sum, weight, eps).
/// `sum` may alias `residual` (in-place residual update).
void add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, float eps, const Tensor& sum,
                  const Tensor& normed);

/// (x - mean) / sqrt(var + eps) * weight + bias over the last dimension; weight and bias [H] or undefined.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps);
/// layer_norm into `out`.
void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, const Tensor& out);

}  // namespace metallic
