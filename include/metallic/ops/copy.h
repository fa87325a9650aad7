// Copies between views, with broadcasting and dtype conversion.
#pragma once

#include "metallic/core/tensor.h"

namespace metallic {

/// Writes `src` (broadcast to dst's shape, converted to dst's dtype) into `dst`; both on one device.
/// Dense dtypes only; float to integer conversion truncates and saturates, NaN becomes 0.
void copy(const Tensor& src, const Tensor& dst);
/// A dense copy of `x` converted to `dtype` (a plain copy when the dtypes match).
Tensor cast(const Tensor& x, DType dtype);

}  // namespace metallic
