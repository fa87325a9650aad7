#include "metallic/ops/fused_linear.h"

#include <utility>

#include "backend/fused_linear.h"
#include "metallic/model/quant.h"
#include "metallic/ops/copy.h"
#include "ops/dispatch.h"
#include "ops/validate.h"

namespace metallic {
namespace {

constexpr const char* kOp = "fused_linear";

// The bytes [first, last) of its buffer that a view can touch.
std::pair<int64_t, int64_t> byte_span(const Tensor& t) {
  int64_t last = t.offset() + element_size(t.dtype());
  for (int d = 0; d < t.rank(); ++d) last += (t.dim(d) - 1) * t.stride(d) * element_size(t.dtype());
  return {t.offset(), last};
}

void require_weight(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  ops::require_defined(weight, kOp, "weight");
  ops::require_same_device(x, weight, kOp);
  check(weight.rank() == 2, ErrorCode::ShapeMismatch, kOp, ": weight must be [N, K], got ",
        weight.shape().to_string());
  const int64_t k = x.dim(-1), n = weight.dim(0);
  check(weight.dim(1) == k, ErrorCode::ShapeMismatch, kOp, ": weight ", weight.shape().to_string(),
        " does not match x ", x.shape().to_string(), " (K=", k, ")");
  const DType wt = weight.dtype();
  if (is_quantized(wt)) {
    check(quant::can_dequantize(wt), ErrorCode::NotSupported, kOp, ": weight dtype ", name(wt),
          " has no decoder");
    check(k % info(wt).block_size == 0, ErrorCode::InvalidArgument, kOp, ": K=", k, " is not a multiple of ",
          name(wt), "'s block size ", info(wt).block_size);
    check(weight.stride(1) == 1 && (n == 1 || weight.stride(0) == k), ErrorCode::InvalidArgument, kOp, ": a ",
          name(wt), " weight must have dense rows (strides ", weight.strides().to_string(), ")");
  } else {
    ops::require_compute_float(weight, kOp, "weight");
  }
  if (bias.defined()) {
    ops::require_same_device(x, bias, kOp);
    ops::require_compute_float(bias, kOp, "bias");
    check(bias.rank() == 1 && bias.dim(0) == n, ErrorCode::ShapeMismatch, kOp, ": bias ",
          bias.shape().to_string(), " should be [", n, "]");
  }
}

}  // namespace

void fused_linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const FusedLinearOptions& options, const Tensor& out) {
  ops::require_compute_float(x, kOp, "x");
  check(x.rank() >= 1 && x.dim(-1) > 0, ErrorCode::InvalidArgument, kOp, ": x has shape ",
        x.shape().to_string(), ", needs a non-empty last dimension");
  require_weight(x, weight, bias);
  const int64_t k = x.dim(-1), n = weight.dim(0);
  const bool swiglu = options.epilogue == LinearEpilogue::SwiGLU;
  check(!swiglu || n % 2 == 0, ErrorCode::ShapeMismatch, kOp, ": the SwiGLU epilogue needs an even N, got ",
        n);
  if (options.rms_norm && options.norm_weight.defined()) {
    const Tensor& g = options.norm_weight;
    ops::require_same_device(x, g, kOp);
    check(g.dtype() == x.dtype() || g.dtype() == DType::F32, ErrorCode::DTypeMismatch, kOp,
          ": norm_weight is ", name(g.dtype()), ", expected ", name(x.dtype()), " or f32");
    ops::require_shape(g, {k}, kOp, "norm_weight");
  }
  ops::require_defined(out, kOp, "out");
  ops::require_same_device(x, out, kOp);
  ops::require_same_dtype(x, out, kOp);
  Shape shape = x.shape();
  const int64_t n_out = swiglu ? n / 2 : n;
  shape[shape.rank() - 1] = n_out;
  ops::require_shape(out, shape, kOp, "out");
  if (out.numel() == 0) return;
  if (out.buffer() == x.buffer()) {
    const auto [xa, xb] = byte_span(x);
    const auto [oa, ob] = byte_span(out);
    check(ob <= xa || xb <= oa, ErrorCode::InvalidArgument, kOp, ": out overlaps x");
  }
  FusedLinearOptions o = options;
  if (!o.rms_norm) o.norm_weight = Tensor();
  const int64_t m = out.numel() / n_out;
  // The kernels take x as [M, K] with unit inner stride and out as dense [M, N].
  const Tensor x2 = x.contiguous().reshape({m, k});
  if (out.is_contiguous()) {
    MTL_DISPATCH(out.device(), fused_linear, x2, weight, bias, o, out.reshape({m, n_out}));
    return;
  }
  const Tensor y = Tensor::empty(out.context(), {m, n_out}, out.dtype(), Storage::Pool);
  if (o.epilogue == LinearEpilogue::Accumulate) copy(out, y.reshape(shape));
  MTL_DISPATCH(out.device(), fused_linear, x2, weight, bias, o, y);
  copy(y.reshape(shape), out);
}

bool fused_linear_single_pass(const Tensor& weight, int64_t rows) {
  ops::require_defined(weight, kOp, "weight");
  // A query, not a kernel: MTL_DISPATCH's branch for an absent backend cannot yield a value.
#if METALLIC_WITH_CUDA
  if (weight.device().is_cuda()) return cuda::fused_linear_single_pass(weight, rows);
#endif
  return cpu::fused_linear_single_pass(weight, rows);
}

}  // namespace metallic
