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
  int64_t sq;
  int64_t query_offset;
  int tpr;
  RowLayout<2> rows;
};

// Causal: columns past the mask are neither read nor exponentiated (the non-causal instances skip the
// per-element test altogether). P packs per thread stay in registers; longer rows re-read the excess.
// Blocks walk their rows, each row's packs already on their way to L2 while the previous row is reduced
// and written. Log: log-softmax. At most 80 registers: six blocks of 128 threads per SM.
template <class T, int W, int P, bool Causal, bool Log>
__global__ void __launch_bounds__(kMaxRowThreads, 3) softmax_kernel(SoftmaxParams<T> p) {
  constexpr float kLog2e = 1.4426950408889634f;
  const int tpr = p.tpr, lane = static_cast<int>(threadIdx.x) % tpr;
  const int64_t per_block = blockDim.x / tpr, step = int64_t{gridDim.x} * per_block;
  const int64_t len = p.rows.len, packs = len / W;
  // Packs of W > 1 imply unit columns (see packs_fit).
  const int64_t cx = W > 1 ? 1 : p.rows.col_stride[0], co = W > 1 ? 1 : p.rows.col_stride[1];
  // Columns [0, kept) of `row` survive the causal mask (j <= i + query_offset).
  auto kept_of = [&](int64_t row) {
    if (!Causal || !p.causal) return len;
    const int64_t last = row % p.sq + p.query_offset;
    return last < 0 ? int64_t{0} : (last + 1 < len ? last + 1 : len);
  };

  auto prefetch_row = [&](int64_t row) {
    if (W == 1 || row >= p.rows.rows) return;
    int64_t o[2];
    p.rows.offsets(row, o);
    const int64_t kept = kept_of(row);
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const int64_t j = lane + int64_t{k} * tpr;
      if (j < packs && (!Causal || j * W < kept)) prefetch_l2(p.x + o[0] + j * W);
    }
  };

  // Every thread of the block calls it (the reductions).
  auto process = [&](int64_t row) {
    const bool active = row < p.rows.rows;
    int64_t o[2] = {0, 0};
    if (active) p.rows.offsets(row, o);
    const T* x = p.x + o[0];
    T* out = p.out + o[1];
    const int64_t kept = kept_of(row);
    // Elements of pack j that are kept (0..W).
    auto kept_in = [&](int64_t j) {
      const int64_t r = kept - j * W;
      return static_cast<int>(r < 0 ? 0 : (r > W ? W : r));
    };
    // Element e of a pack with `n` kept elements, scaled, or -inf where masked.
    auto value = [&](const Pack<T, W>& a, int n, int e) {
      const float f = to_f32(a.v[e]) * p.scale;
      return Causal && e >= n ? -INFINITY : f;
    };
    auto load = [&](int64_t j) { return load_pack<T, W>(x + j * W * cx); };
    auto live = [&](int64_t j) { return active && j < packs && (!Causal || j * W < kept); };

    // Masked packs are never loaded. Softmax widens and scales the row once into f32 registers, which then
    // hold the exponentials, so that each element costs a single exp; log-softmax needs no exponentials
    // afterwards and widens the packs again instead of holding twice the registers.
    Pack<T, W> v[P];
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const int64_t j = lane + int64_t{k} * tpr;
      if (live(j)) v[k] = load(j);
    }
    float f[P][W];
    auto scaled = [&](int k, int e) {
      const int64_t j = lane + int64_t{k} * tpr;
      return live(j) ? value(v[k], Causal ? kept_in(j) : W, e) : -INFINITY;
    };
    float max = -INFINITY;
#pragma unroll
    for (int k = 0; k < P; ++k) {
#pragma unroll
      for (int e = 0; e < W; ++e) {
        const float s = scaled(k, e);
        if (!Log) f[k][e] = s;
        max = fmaxf(max, s);
      }
    }
    auto pack_max = [&](const Pack<T, W>& a, int64_t j) {
      const int n = Causal ? kept_in(j) : W;
#pragma unroll
      for (int e = 0; e < W; ++e) max = fmaxf(max, value(a, n, e));
    };
    for (int64_t j = lane + int64_t{P} * tpr; live(j); j += tpr) pack_max(load(j), j);
    max = row_max(max, tpr);
    // A fully masked row has max -inf; shifting by 0 keeps every exp at exactly 0 instead of NaN. The
    // difference is taken before the scaling by log2(e) so that large inputs lose no accuracy.
    const float shift = kept == 0 ? 0.f : max;
    auto exp_of = [&](float s) { return fast_exp2((s - shift) * kLog2e); };
    float sum = 0;
#pragma unroll
    for (int k = 0; k < P; ++k) {
      float s = 0;
#pragma unroll
      for (int e = 0; e < W; ++e) {
        const float x_exp = exp_of(Log ? scaled(k, e) : f[k][e]);
        s += x_exp;
        if (!Log) f[k][e] = x_exp;
      }
      sum += s;
    }
    auto pack_sum = [&](const Pack<T, W>& a, int64_t j) {
      const int n = Causal ? kept_in(j) : W;
      float s = 0;
#pragma unroll
      for (int e = 0; e < W; ++e) s += exp_of(value(a, n, e));
      sum += s;
    };
    for (int64_t j = lane + int64_t{P} * tpr; live(j); j += tpr) pack_sum(load(j), j);
    sum = row_sum(sum, tpr);
    if (!active) return;
    const float inv = 1.f / sum;
    const float log_sum = Log ? logf(sum) : 0.f;

    // `y`: the scaled inputs (log) or their exponentials. Masked columns are exact (0 or -inf) even when a
    // NaN elsewhere poisons the row.
    auto write = [&](int64_t j, const float(&y)[W]) {
      const int n = Causal ? kept_in(j) : W;
      float r[W];
#pragma unroll
      for (int e = 0; e < W; ++e) {
        if (Log)
          r[e] = Causal && e >= n ? -INFINITY : y[e] - shift - log_sum;
        else
          r[e] = Causal && e >= n ? 0.f : y[e] * inv;
      }
      store_pack<T, W>(out + j * W * co, pack_from_f32<T, W>(r));
    };
    // Packs that were not loaded are wholly masked: write() never looks at their contents.
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const int64_t j = lane + int64_t{k} * tpr;
      if (j >= packs) continue;
      if (Log) {
        float y[W];
#pragma unroll
        for (int e = 0; e < W; ++e) y[e] = scaled(k, e);
        write(j, y);
      } else {
        write(j, f[k]);
      }
    }
    for (int64_t j = lane + int64_t{P} * tpr; j < packs; j += tpr) {
      float y[W];
      const Pack<T, W> a = live(j) ? load(j) : Pack<T, W>{};
      const int n = Causal ? kept_in(j) : W;
#pragma unroll
      for (int e = 0; e < W; ++e) y[e] = Log ? value(a, n, e) : exp_of(value(a, n, e));
      write(j, y);
    }
  };

  // `base` is the block's first row of the step: the same for all its threads, which must all reach the
  // reductions of every step.
  for (int64_t base = int64_t{blockIdx.x} * per_block; base < p.rows.rows; base += step) {
    const int64_t row = base + threadIdx.x / tpr;
    prefetch_row(row + step);
    process(row);
  }
}

template <class T, bool Log>
void launch(const Tensor& x, const SoftmaxOptions& options, const Tensor& out) {
  SoftmaxParams<T> p{};
  p.x = x.data_as<T>();
  p.out = out.data_as<T>();
  p.scale = options.scale;
  p.causal = options.causal;
  p.sq = x.rank() >= 2 ? x.dim(-2) : 1;
  p.query_offset = options.query_offset;
  const std::array<const Tensor*, 2> ops = {&x, &out};
  p.rows = make_row_layout<2>(x.shape(), ops);
  constexpr int V = kVec<T>;
  const bool vec = packs_fit<2>(p.rows, ops, V);
  // kSmallPacks for every type: the f32 copy of the row (or the exponentials) doubles the registers of the
  // 16-bit types, and longer rows per thread would leave too few warps per SM.
  const RowLaunch rl = row_launch(p.rows.rows, vec ? p.rows.len / V : p.rows.len, vec, kSmallPacks);
  p.tpr = rl.tpr;
  const cudaStream_t stream = stream_of(x);
  auto run = [&](auto kernel) { kernel<<<row_grid(kernel, rl), rl.threads, 0, stream>>>(p); };
  if (!vec)
    run(softmax_kernel<T, 1, kSmallPacks, true, Log>);
  else if (p.causal)
    run(softmax_kernel<T, V, kSmallPacks, true, Log>);
  else
    run(softmax_kernel<T, V, kSmallPacks, false, Log>);
  MTL_CUDA_CHECK_LAUNCH("softmax_kernel");
}

template <class T>
void launch(const Tensor& x, const SoftmaxOptions& options, bool log, const Tensor& out) {
  if (log)
    launch<T, true>(x, options, out);
  else
    launch<T, false>(x, options, out);
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
