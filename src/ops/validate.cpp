#include "ops/validate.h"

#include "metallic/core/error.h"

namespace metallic::ops {

void require_defined(const Tensor& t, const char* op, const char* what) {
  check(t.defined(), ErrorCode::InvalidArgument, op, ": ", what, " is an undefined tensor");
}

void require_same_device(const Tensor& a, const Tensor& b, const char* op) {
  check(a.device() == b.device(), ErrorCode::Device, op, ": operands on different devices (",
        a.device().to_string(), " and ", b.device().to_string(), ")");
}

void require_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  check(a.dtype() == b.dtype(), ErrorCode::DTypeMismatch, op, ": dtypes differ (", name(a.dtype()), " and ",
        name(b.dtype()), ")");
}

void require_dense(const Tensor& t, const char* op) {
  check(!is_quantized(t.dtype()), ErrorCode::NotSupported, op, ": block dtype ", name(t.dtype()),
        " is storage only; dequantize it first");
}

void require_compute_float(const Tensor& t, const char* op, const char* what) {
  require_defined(t, op, what);
  check(is_compute_float(t.dtype()), ErrorCode::NotSupported, op, ": ", what, " has dtype ", name(t.dtype()),
        "; f32, f16 and bf16 are supported");
}

void require_shape(const Tensor& t, const Shape& shape, const char* op, const char* what) {
  check(t.shape() == shape, ErrorCode::ShapeMismatch, op, ": ", what, " has shape ", t.shape().to_string(),
        ", expected ", shape.to_string());
}

}  // namespace metallic::ops
