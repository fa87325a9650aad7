// CUDA softmax and log-softmax: tpr threads own a row, keep it in registers between the max, the sum and
// the write (one pass over memory); the causal mask is applied by column index, never read from memory.
#include <cmath>

#include "backend/cuda/rows.cuh"
#include "backend/softmax.h"

namespace metallic::cuda {
namespace {

template <class T>
struct SoftmaxParams {
  const T* x;
  T* out;
  float scale;
  bool causal;
  bool log;
  int64_t sq;
  int64_t query_offset;
  int tpr;
  RowLayout<2> rows;
};

template <class T, int W>
__global__ void __launch_bounds__(kMaxRowThreads) softmax_kernel(SoftmaxParams<T> p) {
  constexpr float kLog2e = 1.4426950408889634f;
  const int tpr = p.tpr, lane = static_cast<int>(threadIdx.x) % tpr;
  const int64_t row = int64_t{blockIdx.x} * (blockDim.x / tpr) + threadIdx.x / tpr;
  const bool active = row < p.rows.rows;
  const int64_t len = p.rows.len, packs = len / W;
  int64_t o[2] = {0, 0};
  if (active) p.rows.offsets(row, o);
  const T* x = p.x + o[0];
  T* out = p.out + o[1];
  const int64_t cx = p.rows.col_stride[0], co = p.rows.col_stride[1];
  // Columns [0, kept) survive the causal mask (j <= i + query_offset).
  int64_t kept = len;
  if (p.causal) {
    const int64_t last = row % p.sq + p.query_offset;
    kept = last < 0 ? 0 : (last + 1 < len ? last + 1 : len);
  }
  // Element e of pack j, scaled, or -inf where masked.
  auto value = [&](const Pack<T, W>& a, int64_t j, int e) {
    return j * W + e < kept ? to_f32(a.v[e]) * p.scale : -INFINITY;
  };

  // The row stays in registers as stored (16 bytes per pack).
  Pack<T, W> v[kRowPacks];
#pragma unroll
  for (int k = 0; k < kRowPacks; ++k) {
    const int64_t j = lane + int64_t{k} * tpr;
    if (active && j < packs) v[k] = load_pack<T, W>(x + j * W * cx);
  }
  float max = -INFINITY;
#pragma unroll
  for (int k = 0; k < kRowPacks; ++k) {
    const int64_t j = lane + int64_t{k} * tpr;
    if (active && j < packs)
#pragma unroll
      for (int e = 0; e < W; ++e) max = fmaxf(max, value(v[k], j, e));
  }
  for (int64_t j = lane + int64_t{kRowPacks} * tpr; active && j < packs; j += tpr) {
    const Pack<T, W> a = load_pack<T, W>(x + j * W * cx);
#pragma unroll
    for (int e = 0; e < W; ++e) max = fmaxf(max, value(a, j, e));
  }
  max = row_max(max, tpr);
  // A fully masked row has max -inf; shifting by 0 keeps every exp at exactly 0 instead of NaN. The
  // difference is taken before the scaling by log2(e) so that large inputs lose no accuracy.
  const float shift = kept == 0 ? 0.f : max;
  float sum = 0;
#pragma unroll
  for (int k = 0; k < kRowPacks; ++k) {
    const int64_t j = lane + int64_t{k} * tpr;
    if (active && j < packs)
#pragma unroll
      for (int e = 0; e < W; ++e) sum += fast_exp2((value(v[k], j, e) - shift) * kLog2e);
  }
  for (int64_t j = lane + int64_t{kRowPacks} * tpr; active && j < packs; j += tpr) {
    const Pack<T, W> a = load_pack<T, W>(x + j * W * cx);
#pragma unroll
    for (int e = 0; e < W; ++e) sum += fast_exp2((value(a, j, e) - shift) * kLog2e);
  }
  sum = row_sum(sum, tpr);
  if (!active) return;
  const float inv = 1.f / sum;
  const float log_sum = logf(sum);

  auto write = [&](int64_t j, const Pack<T, W>& a) {
    Pack<T, W> r;
#pragma unroll
    for (int e = 0; e < W; ++e) {
      // Masked columns are exact (0 or -inf) even when a NaN elsewhere poisons the row.
      const float d = value(a, j, e) - shift;
      const float r_kept = p.log ? d - log_sum : fast_exp2(d * kLog2e) * inv;
      r.v[e] = from_f32<T>(j * W + e < kept ? r_kept : (p.log ? -INFINITY : 0.f));
    }
    store_pack<T, W>(out + j * W * co, r);
  };
#pragma unroll
  for (int k = 0; k < kRowPacks; ++k) {
    const int64_t j = lane + int64_t{k} * tpr;
    if (j < packs) write(j, v[k]);
  }
  for (int64_t j = lane + int64_t{kRowPacks} * tpr; j < packs; j += tpr)
    write(j, load_pack<T, W>(x + j * W * cx));
}

template <class T>
void launch(const Tensor& x, const SoftmaxOptions& options, bool log, const Tensor& out) {
  SoftmaxParams<T> p{};
  p.x = x.data_as<T>();
  p.out = out.data_as<T>();
  p.scale = options.scale;
  p.causal = options.causal;
  p.log = log;
  p.sq = x.rank() >= 2 ? x.dim(-2) : 1;
  p.query_offset = options.query_offset;
  const std::array<const Tensor*, 2> ops = {&x, &out};
  p.rows = make_row_layout<2>(x.shape(), ops);
  constexpr int V = kVec<T>;
  const bool vec = packs_fit<2>(p.rows, ops, V);
  const RowLaunch rl = row_launch(p.rows.rows, vec ? p.rows.len / V : p.rows.len);
  p.tpr = rl.tpr;
  if (vec)
    softmax_kernel<T, V><<<rl.blocks, rl.threads, 0, stream_of(x)>>>(p);
  else
    softmax_kernel<T, 1><<<rl.blocks, rl.threads, 0, stream_of(x)>>>(p);
  MTL_CUDA_CHECK_LAUNCH("softmax_kernel");
}

}  // namespace

void softmax(const Tensor& x, const SoftmaxOptions& options, bool log, const Tensor& out) {
  switch (x.dtype()) {
    case DType::F32: return launch<float>(x, options, log, out);
    case DType::F16: return launch<f16>(x, options, log, out);
    case DType::BF16: return launch<bf16>(x, options, log, out);
    default: fail(ErrorCode::NotSupported, "softmax: dtype ", name(x.dtype()), " is not supported");
  }
}

}  // namespace metallic::cuda
