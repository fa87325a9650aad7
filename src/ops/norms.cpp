#include "metallic/ops/norms.h"

#include "backend/norms.h"
#include "ops/dispatch.h"
#include "ops/validate.h"

namespace metallic {
namespace {

void require_input(const Tensor& x, const char* op) {
  ops::require_compute_float(x, op, "x");
  check(x.rank() >= 1 && x.dim(-1) > 0, ErrorCode::InvalidArgument, op, ": x has shape ",
        x.shape().to_string(), ", needs a non-empty last dimension");
}

// weight and bias: undefined, or [H] in x's dtype or f32 on x's device.
void require_param(const Tensor& p, const Tensor& x, const char* op, const char* what) {
  if (!p.defined()) return;
  ops::require_same_device(x, p, op);
  check(p.dtype() == x.dtype() || p.dtype() == DType::F32, ErrorCode::DTypeMismatch, op, ": ", what, " is ",
        name(p.dtype()), ", expected ", name(x.dtype()), " or f32");
  ops::require_shape(p, {x.dim(-1)}, op, what);
}

void require_output(const Tensor& out, const Tensor& x, const char* op, const char* what) {
  ops::require_defined(out, op, what);
  ops::require_same_device(x, out, op);
  ops::require_same_dtype(x, out, op);
  ops::require_shape(out, x.shape(), op, what);
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) {
  require_input(x, "rms_norm");
  require_param(weight, x, "rms_norm", "weight");
  require_output(out, x, "rms_norm", "out");
  if (x.numel() == 0) return;
  MTL_DISPATCH(x.device(), rms_norm, x, weight, eps, out);
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  require_input(x, "rms_norm");
  Tensor out = Tensor::empty(x.context(), x.shape(), x.dtype());
  rms_norm(x, weight, eps, out);
  return out;
}

void add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, float eps, const Tensor& sum,
                  const Tensor& normed) {
  require_input(x, "add_rms_norm");
  require_output(residual, x, "add_rms_norm", "residual");
  require_param(weight, x, "add_rms_norm", "weight");
  require_output(sum, x, "add_rms_norm", "sum");
  require_output(normed, x, "add_rms_norm", "normed");
  if (x.numel() == 0) return;
  MTL_DISPATCH(x.device(), add_rms_norm, x, residual, weight, eps, sum, normed);
}

void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, const Tensor& out) {
  require_input(x, "layer_norm");
  require_param(weight, x, "layer_norm", "weight");
  require_param(bias, x, "layer_norm", "bias");
  if (weight.defined() && bias.defined()) ops::require_same_dtype(weight, bias, "layer_norm");
  require_output(out, x, "layer_norm", "out");
  if (x.numel() == 0) return;
  MTL_DISPATCH(x.device(), layer_norm, x, weight, bias, eps, out);
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  require_input(x, "layer_norm");
  Tensor out = Tensor::empty(x.context(), x.shape(), x.dtype());
  layer_norm(x, weight, bias, eps, out);
  return out;
}

}  // namespace metallic
