#include "metallic/ops/copy.h"

#include "backend/elementwise.h"
#include "ops/dispatch.h"
#include "ops/validate.h"

namespace metallic {

void copy(const Tensor& src, const Tensor& dst) {
  ops::require_defined(src, "copy", "src");
  ops::require_defined(dst, "copy", "dst");
  ops::require_same_device(src, dst, "copy");
  ops::require_dense(src, "copy");
  ops::require_dense(dst, "copy");
  MTL_DISPATCH(dst.device(), copy, src.expand(dst.shape()), dst);
}

Tensor cast(const Tensor& x, DType dtype) {
  ops::require_defined(x, "cast", "x");
  Tensor out = Tensor::empty(x.context(), x.shape(), dtype);
  copy(x, out);
  return out;
}

}  // namespace metallic
