#include "metallic/ops/rope.h"

#include <cmath>
#include <utility>

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

// Options with rotary_dims resolved, checked against x [.., .., .., head_dim].
RopeOptions resolve(const Tensor& x, const RopeOptions& options, const char* op) {
  const int64_t d = x.dim(3);
  RopeOptions resolved = options;
  if (resolved.rotary_dims == 0) resolved.rotary_dims = d;
  const int64_t rot = resolved.rotary_dims;
  check(rot > 0 && rot <= d && rot % 2 == 0, ErrorCode::InvalidArgument, op, ": rotary_dims ", rot,
        " must be even and in (0, head_dim = ", d, "]");
  check(std::isfinite(options.theta) && options.theta > 0, ErrorCode::InvalidArgument, op, ": theta ",
        options.theta, " must be positive");
  if (options.freq_factors.defined()) {
    ops::require_same_device(x, options.freq_factors, op);
    check(options.freq_factors.dtype() == DType::F32, ErrorCode::DTypeMismatch, op, ": freq_factors is ",
          name(options.freq_factors.dtype()), ", expected f32");
    ops::require_shape(options.freq_factors, {rot / 2}, op, "freq_factors");
  }
  return resolved;
}

void require_dense_rows(const Tensor& t, const char* what) {
  check(t.dim(3) == 1 || t.stride(3) == 1, ErrorCode::InvalidArgument,
        "rope_kv_write: the last dimension of ", what, " must be dense");
}

}  // namespace

void rope(const Tensor& x, const RopeOptions& options, const Tensor& out) {
  require_input(x);
  ops::require_defined(out, "rope", "out");
  ops::require_same_device(x, out, "rope");
  ops::require_same_dtype(x, out, "rope");
  ops::require_shape(out, x.shape(), "rope", "out");
  const RopeOptions resolved = resolve(x, options, "rope");
  if (x.numel() == 0) return;
  MTL_DISPATCH(x.device(), rope, x, resolved, out);
}

namespace ops {

RopeOptions check_rope_kv_write(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                                const RopeOptions& options, const Tensor& q_out, const Tensor& k_cache,
                                const Tensor& v_cache) {
  const char* op = "rope_kv_write";
  require_compute_float(q, op, "q");
  require_compute_float(k_cache, op, "k_cache");
  require_defined(positions, op, "positions");
  check(q.rank() == 4 && k_cache.rank() == 4, ErrorCode::InvalidArgument,
        "rope_kv_write: q must be [B, S, Hq, D] and the caches [B, capacity, Hkv, D], got ",
        q.shape().to_string(), " and ", k_cache.shape().to_string());
  const int64_t batch = q.dim(0), seq = q.dim(1), d = q.dim(3), hkv = k_cache.dim(2);
  for (const Tensor* t : {&k, &v, &positions, &q_out, &k_cache, &v_cache}) require_same_device(q, *t, op);
  require_same_dtype(q, k, op);
  require_same_dtype(q, v, op);
  require_same_dtype(k_cache, v_cache, op);
  require_same_dtype(k_cache, q_out, op);
  require_shape(q_out, q.shape(), op, "q_out");
  require_shape(k, Shape{batch, seq, hkv, d}, op, "k");
  require_shape(v, Shape{batch, seq, hkv, d}, op, "v");
  require_shape(k_cache, Shape{batch, k_cache.dim(1), hkv, d}, op, "k_cache");
  require_shape(v_cache, k_cache.shape(), op, "v_cache");
  check(positions.dtype() == DType::I32 && positions.is_contiguous(), ErrorCode::InvalidArgument,
        "rope_kv_write: positions must be dense i32");
  require_shape(positions, Shape{seq}, op, "positions");
  for (const auto& [t, what] : {std::pair{&q, "q"},
                                {&q_out, "q_out"},
                                {&k, "k"},
                                {&v, "v"},
                                {&k_cache, "k_cache"},
                                {&v_cache, "v_cache"}})
    require_dense_rows(*t, what);
  return resolve(q, options, op);
}

}  // namespace ops

void rope_kv_write(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                   const RopeOptions& options, const Tensor& q_out, const Tensor& k_cache,
                   const Tensor& v_cache) {
  const RopeOptions resolved = ops::check_rope_kv_write(q, k, v, positions, options, q_out, k_cache, v_cache);
  if (q.numel() == 0) return;
  MTL_DISPATCH(q.device(), rope_kv_write, q, k, v, positions, resolved, q_out, k_cache, v_cache);
}

Tensor rope(const Tensor& x, const RopeOptions& options) {
  require_input(x);
  Tensor out = Tensor::empty(x.context(), x.shape(), x.dtype());
  rope(x, options, out);
  return out;
}

}  // namespace metallic
