#include "metallic/ops/attention.h"

#include <cmath>

#include "backend/attention.h"
#include "metallic/ops/copy.h"
#include "ops/dispatch.h"
#include "ops/validate.h"

namespace metallic {
namespace {

void require_attention_operand(const Tensor& t, const char* what) {
  ops::require_defined(t, "sdpa", what);
  check(t.rank() == 4, ErrorCode::InvalidArgument, "sdpa: ", what,
        " must have rank 4 [B, H, S, D], got rank ", t.rank());
  check(t.dim(3) == 1 || t.stride(3) == 1, ErrorCode::InvalidArgument, "sdpa: the last dimension of ", what,
        " must be dense (stride 1), got stride ", t.stride(3));
}

}  // namespace

void scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const AttentionOptions& options, const Tensor& out) {
  require_attention_operand(q, "q");
  require_attention_operand(k, "k");
  require_attention_operand(v, "v");
  require_attention_operand(out, "out");
  for (const Tensor* t : {&k, &v}) {
    ops::require_same_dtype(q, *t, "sdpa");
    ops::require_same_device(q, *t, "sdpa");
  }
  ops::require_same_device(q, out, "sdpa");
  check(out.dtype() == q.dtype() || out.dtype() == DType::F32, ErrorCode::DTypeMismatch, "sdpa: out is ",
        name(out.dtype()), ", expected ", name(q.dtype()), " or f32");
  ops::require_compute_float(q, "sdpa", "q");
  const DType dtype = q.dtype();
  const int64_t batch = q.dim(0), hq = q.dim(1), sq = q.dim(2), d = q.dim(3);
  const int64_t hkv = k.dim(1), sk = k.dim(2);
  check(d > 0, ErrorCode::InvalidArgument, "sdpa: head_dim must be positive, got ", d);
  ops::require_shape(k, Shape{batch, hkv, sk, d}, "sdpa", "k");
  ops::require_shape(v, Shape{batch, hkv, sk, d}, "sdpa", "v");
  check(hkv > 0 && hq % hkv == 0, ErrorCode::ShapeMismatch, "sdpa: kv heads (", hkv,
        ") must divide q heads (", hq, ")");
  ops::require_shape(out, q.shape(), "sdpa", "out");

  Tensor mask;
  if (options.mask.defined()) {
    const Tensor& m = options.mask;
    ops::require_same_device(q, m, "sdpa");
    check(m.dtype() == DType::F32 || m.dtype() == dtype, ErrorCode::DTypeMismatch, "sdpa: mask dtype ",
          name(m.dtype()), " must be f32 or ", name(dtype));
    // Kernels read one f32 mask layout; half masks are small next to the work, so widen them once.
    mask = (m.dtype() == DType::F32 ? m : cast(m, DType::F32)).expand(Shape{batch, hq, sq, sk});
  }
  const Tensor& lengths = options.key_lengths;
  if (lengths.defined()) {
    ops::require_same_device(q, lengths, "sdpa");
    check(lengths.dtype() == DType::I32, ErrorCode::DTypeMismatch, "sdpa: key_lengths must be i32, got ",
          name(lengths.dtype()));
    ops::require_shape(lengths, Shape{batch}, "sdpa", "key_lengths");
    check(lengths.is_contiguous(), ErrorCode::InvalidArgument, "sdpa: key_lengths must be contiguous");
  }
  const float scale = options.scale != 0.0f ? options.scale : 1.0f / std::sqrt(static_cast<float>(d));
  MTL_DISPATCH(q.device(), attention, q, k, v, mask, lengths, scale, options.causal, options.query_offset,
               out);
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options) {
  ops::require_defined(q, "sdpa", "q");
  Tensor out = Tensor::empty(q.context(), q.shape(), q.dtype());
  scaled_dot_product_attention(q, k, v, options, out);
  return out;
}

}  // namespace metallic
