#include "metallic/ops/activations.h"

#include "backend/activations.h"
#include "ops/dispatch.h"
#include "ops/validate.h"

namespace metallic {
namespace {

using ops::require_compute_float;

void require_like(const Tensor& t, const Tensor& like, const char* op, const char* what) {
  ops::require_defined(t, op, what);
  ops::require_same_device(like, t, op);
  ops::require_same_dtype(like, t, op);
  ops::require_shape(t, like.shape(), op, what);
}

void unary(backend::Activation act, const Tensor& x, const Tensor& out, const char* op) {
  require_compute_float(x, op, "x");
  require_like(out, x, op, "out");
  if (x.numel() == 0) return;
  MTL_DISPATCH(x.device(), activation, act, x, out);
}

}  // namespace

void gelu(const Tensor& x, GeluApproximation approximation, const Tensor& out) {
  unary(
      approximation == GeluApproximation::Tanh ? backend::Activation::GeluTanh : backend::Activation::GeluErf,
      x, out, "gelu");
}

Tensor gelu(const Tensor& x, GeluApproximation approximation) {
  require_compute_float(x, "gelu", "x");
  Tensor out = Tensor::empty(x.context(), x.shape(), x.dtype());
  gelu(x, approximation, out);
  return out;
}

void silu(const Tensor& x, const Tensor& out) { unary(backend::Activation::Silu, x, out, "silu"); }

Tensor silu(const Tensor& x) {
  require_compute_float(x, "silu", "x");
  Tensor out = Tensor::empty(x.context(), x.shape(), x.dtype());
  silu(x, out);
  return out;
}

void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) {
  require_compute_float(gate, "swiglu", "gate");
  require_like(up, gate, "swiglu", "up");
  require_like(out, gate, "swiglu", "out");
  if (gate.numel() == 0) return;
  MTL_DISPATCH(gate.device(), swiglu, gate, up, out);
}

Tensor swiglu(const Tensor& gate, const Tensor& up) {
  require_compute_float(gate, "swiglu", "gate");
  Tensor out = Tensor::empty(gate.context(), gate.shape(), gate.dtype());
  swiglu(gate, up, out);
  return out;
}

Tensor swiglu(const Tensor& gate_up) {
  require_compute_float(gate_up, "swiglu", "gate_up");
  check(gate_up.rank() >= 1 && gate_up.dim(-1) % 2 == 0, ErrorCode::ShapeMismatch,
        "swiglu: gate_up has shape ", gate_up.shape().to_string(),
        ", needs an even last dimension [..., 2F]");
  const int64_t f = gate_up.dim(-1) / 2;
  return swiglu(gate_up.narrow(-1, 0, f), gate_up.narrow(-1, f, f));
}

}  // namespace metallic
