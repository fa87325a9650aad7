#include "metallic/ops/softmax.h"

#include "backend/softmax.h"
#include "ops/dispatch.h"
#include "ops/validate.h"

namespace metallic {
namespace {

void require_input(const Tensor& x, const SoftmaxOptions& options, const char* op) {
  ops::require_compute_float(x, op, "x");
  check(x.rank() >= 1, ErrorCode::InvalidArgument, op, ": x is a scalar; softmax needs a last dimension");
  check(!options.causal || x.rank() >= 2, ErrorCode::InvalidArgument, op,
        ": causal needs x [..., Sq, Sk], got ", x.shape().to_string());
}

void run(const Tensor& x, const SoftmaxOptions& options, bool log, const Tensor& out, const char* op) {
  require_input(x, options, op);
  ops::require_defined(out, op, "out");
  ops::require_same_device(x, out, op);
  ops::require_same_dtype(x, out, op);
  ops::require_shape(out, x.shape(), op, "out");
  if (x.numel() == 0) return;
  MTL_DISPATCH(x.device(), softmax, x, options, log, out);
}

}  // namespace

void softmax(const Tensor& x, const SoftmaxOptions& options, const Tensor& out) {
  run(x, options, false, out, "softmax");
}

Tensor softmax(const Tensor& x, const SoftmaxOptions& options) {
  require_input(x, options, "softmax");
  Tensor out = Tensor::empty(x.context(), x.shape(), x.dtype());
  softmax(x, options, out);
  return out;
}

void log_softmax(const Tensor& x, const SoftmaxOptions& options, const Tensor& out) {
  run(x, options, true, out, "log_softmax");
}

Tensor log_softmax(const Tensor& x, const SoftmaxOptions& options) {
  require_input(x, options, "log_softmax");
  Tensor out = Tensor::empty(x.context(), x.shape(), x.dtype());
  log_softmax(x, options, out);
  return out;
}

}  // namespace metallic
