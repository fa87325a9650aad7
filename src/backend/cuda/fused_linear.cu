// fused_linear on CUDA: at most 8 rows of x take the fused GEMV (one kernel for dense weights; for
// block-quantized ones the kernel that rounds x to 8 bits, with the RMSNorm, and the integer GEMV, with the
// epilogue); batches, which go to the GEMM, run the separate ops on pool scratch. fused_linear_rope_kv's
// single pass is that GEMV with the RoPE and cache-write epilogue.
#include "backend/cuda/gemv.h"
#include "backend/cuda/launch.h"
#include "backend/fused_linear.h"
#include "backend/matmul.h"
#include "metallic/core/memory_pool.h"
#include "metallic/ops/activations.h"
#include "metallic/ops/copy.h"
#include "metallic/ops/elementwise.h"
#include "metallic/ops/norms.h"

namespace metallic::cuda {
namespace {

// An f32 copy of `t` in pool scratch unless it already is dense f32 at a 16-byte aligned address.
Tensor f32_aligned(const Tensor& t) {
  if (t.dtype() == DType::F32 && t.is_contiguous() && aligned16(t.data())) return t;
  const Tensor c = Tensor::empty(t.context(), t.shape(), DType::F32, Storage::Pool);
  metallic::copy(t, c);
  return c;
}

// The single-pass GEMV with the options' norm and epilogue, or into RoPE and the caches when `rope_kv` is set
// (then `out` is unused); bias and gain go to the kernel as aligned f32 in pool scratch.
void fused_gemv(const Tensor& x, const Tensor& weight, const Tensor& bias, const FusedLinearOptions& o,
                const RopeKvEpilogue* rope_kv, const Tensor& out) {
  MemoryPool& pool = x.context()->pool();
  const MemoryPool::Mark mark = pool.mark();
  const Tensor b = bias.defined() ? f32_aligned(bias) : Tensor();
  const Tensor g = o.rms_norm && o.norm_weight.defined() ? f32_aligned(o.norm_weight) : Tensor();
  // A scratch copy of the bias or gain is written just before, but by a copy that lets no dependent launch
  // before it ends, so the caller's word on static weights holds for it too.
  const GemvFusion f{o.rms_norm,      g.defined() ? g.data_as<float>() : nullptr, o.eps, o.epilogue, rope_kv,
                     o.static_weights};
  gemv(x, weight, b.defined() ? b.data_as<float>() : nullptr, out, stream_of(x), f);
  pool.release(mark);  // stream order makes the scratch reusable by later work on this stream
}

}  // namespace

bool fused_linear_single_pass(const Tensor& weight, int64_t rows) { return gemv_takes(weight, rows); }

bool fused_linear_rope_kv_single_pass(const Tensor& weight, int64_t rows, const RopeOptions& rope,
                                      const RopeKvTargets& targets) {
  const int64_t d = targets.q_out.dim(3);
  return gemv_takes(weight, rows) && rope.rotary_dims == d && d % 8 == 0 &&
         targets.k_cache.dim(1) <= INT32_MAX;
}

void fused_linear_rope_kv(const Tensor& x, const Tensor& weight, const Tensor& bias,
                          const FusedLinearOptions& o, const RopeKvTargets& targets) {
  const RopeKvEpilogue e = rope_kv_epilogue(targets);
  fused_gemv(x, weight, bias, o, &e, Tensor());
}

void fused_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const FusedLinearOptions& o,
                  const Tensor& out) {
  const int64_t m = x.dim(0), n = weight.dim(0);
  if (cuda::fused_linear_single_pass(weight, m)) {
    fused_gemv(x, weight, bias, o, nullptr, out);
    return;
  }
  MemoryPool& pool = out.context()->pool();
  const MemoryPool::Mark mark = pool.mark();
  Tensor xn = x;
  if (o.rms_norm) {
    xn = Tensor::empty(x.context(), x.shape(), x.dtype(), Storage::Pool);
    metallic::rms_norm(x, o.norm_weight, o.eps, xn);
  }
  if (o.epilogue == LinearEpilogue::Store) {
    cuda::linear(xn, weight, bias, out);
  } else {
    const Tensor y = Tensor::empty(x.context(), {m, n}, x.dtype(), Storage::Pool);
    cuda::linear(xn, weight, bias, y);
    if (o.epilogue == LinearEpilogue::Accumulate)
      metallic::binary(BinaryOp::Add, out, y, out);
    else
      metallic::swiglu(y.narrow(1, 0, n / 2), y.narrow(1, n / 2, n / 2), out);
  }
  pool.release(mark);  // stream order makes the scratch reusable by later work on this stream
}

}  // namespace metallic::cuda
