#include "metallic/ops/elementwise.h"

#include "backend/elementwise.h"
#include "ops/dispatch.h"
#include "ops/validate.h"

namespace metallic {
namespace {

void check_arithmetic(BinaryOp op, DType dtype) {
  check(!is_quantized(dtype), ErrorCode::NotSupported, "binary: block dtype ", name(dtype),
        " is storage only");
  check(op != BinaryOp::Div || info(dtype).is_float, ErrorCode::NotSupported,
        "div: integer division is not supported (dtype ", name(dtype), ")");
}

}  // namespace

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  ops::require_defined(a, "binary", "a");
  ops::require_defined(b, "binary", "b");
  ops::require_defined(out, "binary", "out");
  ops::require_same_dtype(a, b, "binary");
  ops::require_same_dtype(a, out, "binary");
  ops::require_same_device(a, b, "binary");
  ops::require_same_device(a, out, "binary");
  check_arithmetic(op, a.dtype());
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "binary");
  ops::require_shape(out, shape, "binary", "out");
  MTL_DISPATCH(out.device(), binary, op, a.expand(shape), b.expand(shape), out);
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  ops::require_defined(a, "binary", "a");
  ops::require_defined(b, "binary", "b");
  Tensor out = Tensor::empty(a.context(), broadcast_shapes(a.shape(), b.shape(), "binary"), a.dtype());
  binary(op, a, b, out);
  return out;
}

void binary(BinaryOp op, const Tensor& a, double scalar, bool scalar_first, const Tensor& out) {
  ops::require_defined(a, "binary", "a");
  ops::require_defined(out, "binary", "out");
  ops::require_same_dtype(a, out, "binary");
  ops::require_same_device(a, out, "binary");
  check_arithmetic(op, a.dtype());
  ops::require_shape(out, a.shape(), "binary", "out");
  MTL_DISPATCH(out.device(), binary_scalar, op, a, scalar, scalar_first, out);
}

Tensor binary(BinaryOp op, const Tensor& a, double scalar, bool scalar_first) {
  ops::require_defined(a, "binary", "a");
  Tensor out = Tensor::empty(a.context(), a.shape(), a.dtype());
  binary(op, a, scalar, scalar_first, out);
  return out;
}

}  // namespace metallic
