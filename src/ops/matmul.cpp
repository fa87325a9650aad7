#include "metallic/ops/matmul.h"

#include "backend/matmul.h"
#include "metallic/model/quant.h"
#include "metallic/ops/copy.h"
#include "metallic/ops/creation.h"
#include "metallic/ops/elementwise.h"
#include "ops/dispatch.h"
#include "ops/validate.h"

namespace metallic {
namespace {

using ops::require_compute_float;

struct MatmulShapes {
  Tensor a, b;  // [batch..., M, K] and [batch..., K, N], batch broadcast
  Shape out;
};

MatmulShapes matmul_shapes(const Tensor& a_in, const Tensor& b_in, const MatmulOptions& o) {
  require_compute_float(a_in, "matmul", "a");
  ops::require_defined(b_in, "matmul", "b");
  ops::require_same_device(a_in, b_in, "matmul");
  ops::require_same_dtype(a_in, b_in, "matmul");
  check(a_in.rank() >= 2 && b_in.rank() >= 2, ErrorCode::ShapeMismatch,
        "matmul: operands need rank >= 2, got ", a_in.shape().to_string(), " and ", b_in.shape().to_string());
  const Tensor a = o.transpose_a ? a_in.transpose(-1, -2) : a_in;
  const Tensor b = o.transpose_b ? b_in.transpose(-1, -2) : b_in;
  const int64_t m = a.dim(-2), k = a.dim(-1), kb = b.dim(-2), n = b.dim(-1);
  check(k == kb, ErrorCode::ShapeMismatch, "matmul: inner dimensions differ (a ", a.shape().to_string(),
        " gives K=", k, ", b ", b.shape().to_string(), " gives K=", kb, ")");
  Shape ba, bb;
  for (int d = 0; d < a.rank() - 2; ++d) ba.push_back(a.dim(d));
  for (int d = 0; d < b.rank() - 2; ++d) bb.push_back(b.dim(d));
  Shape batch = broadcast_shapes(ba, bb, "matmul");
  Shape sa = batch, sb = batch, so = batch;
  sa.push_back(m);
  sa.push_back(k);
  sb.push_back(k);
  sb.push_back(n);
  so.push_back(m);
  so.push_back(n);
  return {a.expand(sa), b.expand(sb), so};
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& out, const MatmulOptions& options) {
  MatmulShapes s = matmul_shapes(a, b, options);
  ops::require_defined(out, "matmul", "out");
  ops::require_same_device(a, out, "matmul");
  ops::require_same_dtype(a, out, "matmul");
  ops::require_shape(out, s.out, "matmul", "out");
  if (out.numel() == 0) return;
  if (s.a.dim(-1) == 0) {  // empty sum: out = beta * out
    if (options.beta == 0.f)
      fill(out, 0.0);
    else
      binary(BinaryOp::Mul, out, static_cast<double>(options.beta), false, out);
    return;
  }
  MTL_DISPATCH(out.device(), matmul, s.a, s.b, out, options.alpha, options.beta);
}

Tensor matmul(const Tensor& a, const Tensor& b, const MatmulOptions& options) {
  MatmulShapes s = matmul_shapes(a, b, options);
  Tensor out = Tensor::empty(a.context(), s.out, a.dtype());
  MatmulOptions o = options;
  o.beta = 0.f;  // fresh memory: beta has no previous contents to scale
  matmul(a, b, out, o);
  return out;
}

namespace {

Shape linear_shape(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  require_compute_float(x, "linear", "x");
  ops::require_defined(weight, "linear", "weight");
  ops::require_same_device(x, weight, "linear");
  check(x.rank() >= 1, ErrorCode::ShapeMismatch, "linear: x must have rank >= 1");
  check(weight.rank() == 2, ErrorCode::ShapeMismatch, "linear: weight must be [N, K], got ",
        weight.shape().to_string());
  const int64_t k = x.dim(-1), n = weight.dim(0);
  check(weight.dim(1) == k, ErrorCode::ShapeMismatch, "linear: weight ", weight.shape().to_string(),
        " does not match x ", x.shape().to_string(), " (K=", k, ")");
  const DType wt = weight.dtype();
  if (is_quantized(wt)) {
    check(quant::can_dequantize(wt), ErrorCode::NotSupported, "linear: weight dtype ", name(wt),
          " has no decoder");
    const int64_t block = info(wt).block_size;
    check(k % block == 0, ErrorCode::InvalidArgument, "linear: K=", k, " is not a multiple of ", name(wt),
          "'s block size ", block);
    check(weight.stride(1) == 1 && (n == 1 || weight.stride(0) == k), ErrorCode::InvalidArgument,
          "linear: a ", name(wt), " weight must have dense rows (strides ", weight.strides().to_string(),
          ")");
  } else {
    require_compute_float(weight, "linear", "weight");
  }
  if (bias.defined()) {
    ops::require_same_device(x, bias, "linear");
    require_compute_float(bias, "linear", "bias");
    check(bias.rank() == 1 && bias.dim(0) == n, ErrorCode::ShapeMismatch, "linear: bias ",
          bias.shape().to_string(), " should be [", n, "]");
  }
  Shape out = x.shape();
  out[out.rank() - 1] = n;
  return out;
}

}  // namespace

void linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out) {
  const Shape shape = linear_shape(x, weight, bias);
  ops::require_defined(out, "linear", "out");
  ops::require_same_device(x, out, "linear");
  ops::require_same_dtype(x, out, "linear");
  ops::require_shape(out, shape, "linear", "out");
  if (out.numel() == 0) return;
  const int64_t k = x.dim(-1), n = weight.dim(0), m = out.numel() / n;
  if (k == 0) {
    if (bias.defined())
      copy(bias.expand(shape), out);
    else
      fill(out, 0.0);
    return;
  }
  // The kernels take x as [M, K] with unit inner stride and out as dense [M, N].
  const Tensor x2 = x.contiguous().reshape({m, k});
  const bool direct = out.is_contiguous();
  const Tensor y =
      direct ? out.reshape({m, n}) : Tensor::empty(out.context(), {m, n}, out.dtype(), Storage::Pool);
  MTL_DISPATCH(out.device(), linear, x2, weight, bias, y);
  if (!direct) copy(y.reshape(shape), out);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const Shape shape = linear_shape(x, weight, bias);
  Tensor out = Tensor::empty(x.context(), shape, x.dtype());
  linear(x, weight, bias, out);
  return out;
}

}  // namespace metallic
