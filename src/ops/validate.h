// Argument checks shared by the op front ends.
#pragma once

#include "metallic/core/tensor.h"
#include "metallic/ops/fused_linear.h"
#include "metallic/ops/rope.h"

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

/// rope_kv_write's argument checks (see its declaration); returns the options with rotary_dims resolved.
RopeOptions check_rope_kv_write(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                                const RopeOptions& options, const Tensor& q_out, const Tensor& k_cache,
                                const Tensor& v_cache);
/// fused_linear's argument checks (see its declaration) for x [M, K] and out.
void check_fused_linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const FusedLinearOptions& options, const Tensor& out);

}  // namespace metallic::ops
