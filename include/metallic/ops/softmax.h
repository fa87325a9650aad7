// Softmax over the last dimension, max-subtracted, with optional scale and causal mask.
#pragma once

#include <cstdint>

#include "metallic/core/tensor.h"

namespace metallic {

/// Options of softmax / log_softmax.
struct SoftmaxOptions {
  float scale = 1.0f;        ///< multiplies x before the softmax
  bool causal = false;       ///< x is [..., Sq, Sk]: row i keeps columns j <= i + query_offset
  int64_t query_offset = 0;  ///< absolute position of row 0 (the KV-cache length during decode)
};

/// softmax(scale * x) over the last dimension; masked entries are exactly 0; a fully masked row is 0.
Tensor softmax(const Tensor& x, const SoftmaxOptions& options = {});
/// softmax into `out` (x's shape and dtype; may alias x).
void softmax(const Tensor& x, const SoftmaxOptions& options, const Tensor& out);
/// log(softmax(scale * x)); masked entries are -inf.
Tensor log_softmax(const Tensor& x, const SoftmaxOptions& options = {});
/// log_softmax into `out`.
void log_softmax(const Tensor& x, const SoftmaxOptions& options, const Tensor& out);

}  // namespace metallic
