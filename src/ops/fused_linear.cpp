#include "metallic/ops/fused_linear.h"

#include <utility>

#include "backend/fused_linear.h"
#include "metallic/core/context.h"
#include "metallic/core/memory_pool.h"
#include "metallic/model/quant.h"
#include "metallic/ops/copy.h"
#include "metallic/ops/rope.h"
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

// InvalidArgument naming `op` when `out` (defined) may touch bytes of `x`.
void require_apart(const Tensor& x, const Tensor& out, const char* op, const char* what) {
  if (out.numel() == 0 || x.numel() == 0 || out.buffer() != x.buffer()) return;
  const auto [xa, xb] = byte_span(x);
  const auto [oa, ob] = byte_span(out);
  check(ob <= xa || xb <= oa, ErrorCode::InvalidArgument, op, ": ", what, " overlaps x");
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

namespace ops {

void check_fused_linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const FusedLinearOptions& options, const Tensor& out) {
  require_compute_float(x, kOp, "x");
  check(x.rank() >= 1 && x.dim(-1) > 0, ErrorCode::InvalidArgument, kOp, ": x has shape ",
        x.shape().to_string(), ", needs a non-empty last dimension");
  require_weight(x, weight, bias);
  const int64_t k = x.dim(-1), n = weight.dim(0);
  const bool swiglu = options.epilogue == LinearEpilogue::SwiGLU;
  check(!swiglu || n % 2 == 0, ErrorCode::ShapeMismatch, kOp, ": the SwiGLU epilogue needs an even N, got ",
        n);
  if (options.rms_norm && options.norm_weight.defined()) {
    const Tensor& g = options.norm_weight;
    require_same_device(x, g, kOp);
    check(g.dtype() == x.dtype() || g.dtype() == DType::F32, ErrorCode::DTypeMismatch, kOp,
          ": norm_weight is ", name(g.dtype()), ", expected ", name(x.dtype()), " or f32");
    require_shape(g, {k}, kOp, "norm_weight");
  }
  require_defined(out, kOp, "out");
  require_same_device(x, out, kOp);
  require_same_dtype(x, out, kOp);
  Shape shape = x.shape();
  shape[shape.rank() - 1] = swiglu ? n / 2 : n;
  require_shape(out, shape, kOp, "out");
  require_apart(x, out, kOp, "out");
}

}  // namespace ops

void fused_linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const FusedLinearOptions& options, const Tensor& out) {
  ops::check_fused_linear(x, weight, bias, options, out);
  if (out.numel() == 0) return;
  FusedLinearOptions o = options;
  if (!o.rms_norm) o.norm_weight = Tensor();
  const int64_t k = x.dim(-1), n_out = out.dim(-1), m = out.numel() / n_out;
  // The kernels take x as [M, K] with unit inner stride and out as dense [M, N].
  const Tensor x2 = x.contiguous().reshape({m, k});
  if (out.is_contiguous()) {
    MTL_DISPATCH(out.device(), fused_linear, x2, weight, bias, o, out.reshape({m, n_out}));
    return;
  }
  const Tensor y = Tensor::empty(out.context(), {m, n_out}, out.dtype(), Storage::Pool);
  if (o.epilogue == LinearEpilogue::Accumulate) copy(out, y.reshape(out.shape()));
  MTL_DISPATCH(out.device(), fused_linear, x2, weight, bias, o, y);
  copy(y.reshape(out.shape()), out);
}

bool fused_linear_single_pass(const Tensor& weight, int64_t rows) {
  ops::require_defined(weight, kOp, "weight");
  // A query, not a kernel: MTL_DISPATCH's branch for an absent backend cannot yield a value.
#if METALLIC_WITH_CUDA
  if (weight.device().is_cuda()) return cuda::fused_linear_single_pass(weight, rows);
#endif
  return cpu::fused_linear_single_pass(weight, rows);
}

void fused_linear_rope_kv(const Tensor& x, const Tensor& weight, const Tensor& bias,
                          const FusedLinearOptions& options, const RopeKvTargets& targets) {
  const char* op = "fused_linear_rope_kv";
  ops::require_compute_float(x, op, "x");
  ops::require_defined(weight, op, "weight");
  ops::require_compute_float(targets.q_out, op, "q_out");
  ops::require_compute_float(targets.k_cache, op, "k_cache");
  check(options.epilogue == LinearEpilogue::Store, ErrorCode::InvalidArgument, op,
        ": the product goes to RoPE and the caches, so options.epilogue must be Store");
  check(targets.q_out.rank() == 4 && targets.k_cache.rank() == 4 && weight.rank() == 2,
        ErrorCode::InvalidArgument, op,
        ": q_out must be [B, S, Hq, D], the caches [B, capacity, Hkv, D] and weight 2-d, got ",
        targets.q_out.shape().to_string(), ", ", targets.k_cache.shape().to_string(), " and ",
        weight.shape().to_string());
  const int64_t batch = targets.q_out.dim(0), seq = targets.q_out.dim(1), hq = targets.q_out.dim(2),
                d = targets.q_out.dim(3), hkv = targets.k_cache.dim(2), rows = batch * seq;
  check(x.rank() >= 1 && x.dim(-1) > 0 && x.numel() == rows * x.dim(-1), ErrorCode::ShapeMismatch, op, ": x ",
        x.shape().to_string(), " does not hold the ", rows, " tokens of q_out ",
        targets.q_out.shape().to_string());
  check(weight.dim(0) == (hq + 2 * hkv) * d, ErrorCode::ShapeMismatch, op, ": weight ",
        weight.shape().to_string(), " does not stack ", hq, " q heads and ", hkv, " k and v heads of ", d);
  const Tensor x2 = x.contiguous().reshape({rows, x.dim(-1)});
  MemoryPool& pool = x.context()->pool();
  const MemoryPool::Mark mark = pool.mark();
  // y holds the product between the two ops where there is no single pass; its views carry the checks.
  const Tensor y = Tensor::empty(x.context(), {rows, weight.dim(0)}, x.dtype(), Storage::Pool);
  const Tensor q = y.narrow(1, 0, hq * d).view({batch, seq, hq, d}),
               k = y.narrow(1, hq * d, hkv * d).view({batch, seq, hkv, d}),
               v = y.narrow(1, (hq + hkv) * d, hkv * d).view({batch, seq, hkv, d});
  ops::check_fused_linear(x2, weight, bias, options, y);
  const RopeOptions rope = ops::check_rope_kv_write(q, k, v, targets.positions, targets.rope, targets.q_out,
                                                    targets.k_cache, targets.v_cache);
  require_apart(x, targets.q_out, op, "q_out");
  require_apart(x, targets.k_cache, op, "k_cache");
  require_apart(x, targets.v_cache, op, "v_cache");
  bool single_pass = false;
#if METALLIC_WITH_CUDA
  single_pass =
      rows > 0 && x.device().is_cuda() && cuda::fused_linear_rope_kv_single_pass(weight, rows, rope, targets);
  RopeKvTargets resolved = targets;
  resolved.rope = rope;
  if (single_pass) cuda::fused_linear_rope_kv(x2, weight, bias, options, resolved);
#endif
  if (!single_pass) {
    fused_linear(x2, weight, bias, options, y);
    rope_kv_write(q, k, v, targets.positions, rope, targets.q_out, targets.k_cache, targets.v_cache);
  }
  pool.release(mark);  // stream order makes the scratch reusable by later work on this stream
}

}  // namespace metallic
