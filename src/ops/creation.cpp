#include "metallic/ops/creation.h"

#include <cmath>

#include "backend/elementwise.h"
#include "ops/dispatch.h"
#include "ops/validate.h"

namespace metallic {

void fill(const Tensor& dst, double value) {
  ops::require_defined(dst, "fill", "dst");
  ops::require_dense(dst, "fill");
  MTL_DISPATCH(dst.device(), fill, dst, value);
}

Tensor full(const std::shared_ptr<Context>& context, const Shape& shape, double value, DType dtype) {
  Tensor t = Tensor::empty(context, shape, dtype);
  fill(t, value);
  return t;
}

Tensor zeros(const std::shared_ptr<Context>& context, const Shape& shape, DType dtype) {
  return full(context, shape, 0.0, dtype);
}

Tensor ones(const std::shared_ptr<Context>& context, const Shape& shape, DType dtype) {
  return full(context, shape, 1.0, dtype);
}

Tensor zeros_like(const Tensor& like) { return zeros(like.context(), like.shape(), like.dtype()); }

Tensor ones_like(const Tensor& like) { return ones(like.context(), like.shape(), like.dtype()); }

Tensor arange(const std::shared_ptr<Context>& context, double start, double end, double step, DType dtype) {
  check(step != 0 && std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
        ErrorCode::InvalidArgument, "arange: need finite bounds and a non-zero step (start ", start, ", end ",
        end, ", step ", step, ")");
  const double count = std::ceil((end - start) / step);
  check(count < 9.0e15, ErrorCode::InvalidArgument, "arange: ", count, " elements is too many");
  Tensor t = Tensor::empty(context, {static_cast<int64_t>(std::max(count, 0.0))}, dtype);
  ops::require_dense(t, "arange");
  MTL_DISPATCH(t.device(), arange, t, start, step);
  return t;
}

Tensor uniform(const std::shared_ptr<Context>& context, const Shape& shape, uint64_t seed, double low,
               double high, DType dtype) {
  check(low <= high, ErrorCode::InvalidArgument, "uniform: low ", low, " above high ", high);
  Tensor t = Tensor::empty(context, shape, dtype);
  ops::require_dense(t, "uniform");
  MTL_DISPATCH(t.device(), random, t, backend::Distribution::Uniform, seed, low, high);
  return t;
}

Tensor normal(const std::shared_ptr<Context>& context, const Shape& shape, uint64_t seed, double mean,
              double std, DType dtype) {
  check(std >= 0, ErrorCode::InvalidArgument, "normal: negative standard deviation ", std);
  Tensor t = Tensor::empty(context, shape, dtype);
  ops::require_dense(t, "normal");
  MTL_DISPATCH(t.device(), random, t, backend::Distribution::Normal, seed, mean, std);
  return t;
}

}  // namespace metallic
