// Argument checks shared by the op front ends.
#pragma once

#include "metallic/core/tensor.h"

namespace metallic::ops {

/// InvalidArgument naming `op` unless `t` is defined.
void require_defined(const Tensor& t, const char* op, const char* what);
/// Device error naming `op` unless `a` and `b` live on the same device.
void require_same_device(const Tensor& a, const Tensor& b, const char* op);
/// DTypeMismatch naming `op` unless `a` and `b` have the same dtype.
void require_same_dtype(const Tensor& a, const Tensor& b, const char* op);
/// NotSupported naming `op` unless `t` holds a dense (non-block) dtype.
void require_dense(const Tensor& t, const char* op);
/// Defined, else InvalidArgument; f32, f16 or bf16, else NotSupported; both naming `op` and `what`.
void require_compute_float(const Tensor& t, const char* op, const char* what);
/// ShapeMismatch naming `op` unless `t` has `shape`.
void require_shape(const Tensor& t, const Shape& shape, const char* op, const char* what);

}  // namespace metallic::ops
