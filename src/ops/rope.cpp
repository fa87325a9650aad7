#include "metallic/ops/rope.h"

#include <cmath>

#include "backend/rope.h"
#include "ops/dispatch.h"
#include "ops/validate.h"

namespace metallic {
namespace {

void require_input(const Tensor& x) {
  ops::require_compute_float(x, "rope", "x");
  check(x.rank() == 4, ErrorCode::InvalidArgument, "rope: x must be [batch, seq, heads, head_dim], got ",
        x.shape().to_string());
}

}  // namespace

void rope(const Tensor& x, const RopeOptions& options, const Tensor& out) {
  require_input(x);
  ops::require_defined(out, "rope", "out");
  ops::require_same_device(x, out, "rope");
  ops::require_same_dtype(x, out, "rope");
  ops::require_shape(out, x.shape(), "rope", "out");
  const int64_t d = x.dim(3);
  RopeOptions resolved = options;
  if (resolved.rotary_dims == 0) resolved.rotary_dims = d;
  const int64_t rot = resolved.rotary_dims;
  check(rot > 0 && rot <= d && rot % 2 == 0, ErrorCode::InvalidArgument, "rope: rotary_dims ", rot,
        " must be even and in (0, head_dim = ", d, "]");
  check(std::isfinite(options.theta) && options.theta > 0, ErrorCode::InvalidArgument, "rope: theta ",
        options.theta, " must be positive");
  if (options.freq_factors.defined()) {
    ops::require_same_device(x, options.freq_factors, "rope");
    check(options.freq_factors.dtype() == DType::F32, ErrorCode::DTypeMismatch, "rope: freq_factors is ",
          name(options.freq_factors.dtype()), ", expected f32");
    ops::require_shape(options.freq_factors, {rot / 2}, "rope", "freq_factors");
  }
  if (x.numel() == 0) return;
  MTL_DISPATCH(x.device(), rope, x, resolved, out);
}

Tensor rope(const Tensor& x, const RopeOptions& options) {
  require_input(x);
  Tensor out = Tensor::empty(x.context(), x.shape(), x.dtype());
  rope(x, options, out);
  return out;
}

}  // namespace metallic
