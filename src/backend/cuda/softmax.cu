// CUDA softmax and log-softmax: tpr threads own a row (a warp per 512 f32 or 256 16-bit packs or fewer), keep
// it in registers between the max, the sum and the write (one pass over memory); the causal mask is applied
// by column index, never read from memory.
#include <cmath>
#include <type_traits>

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

// Packs per thread for long rows: f32 rows hold 16 (a 4096-wide row is two warps), the 16-bit types 8 (also
// two warps: on an H200 faster than 4, whose four-warp rows wait on shared-memory reductions, and than 16).
template <class T>
constexpr int kLongRowPacks = sizeof(T) == 4 ? 16 : 8;

// Two 16-bit elements in one register, compared as a pair.
template <class T>
using Pair = std::conditional_t<std::is_same_v<T, bf16>, __nv_bfloat162, __half2>;

// Whether the row max is taken on pairs of stored elements: 16-bit types without a per-element mask.
template <class T, int W, bool Causal>
constexpr bool Packed = sizeof(T) == 2 && W % 2 == 0 && !Causal;

// Causal: columns past the mask are neither read nor exponentiated (the non-causal instances skip the
// per-element test altogether). P packs per thread stay in registers; longer rows re-read the excess.
// f32 rows of 16 packs a thread are capped at 128 registers: 16 warps per SM.
template <class T, int W, int P, bool Causal>
__global__ void __launch_bounds__(kMaxRowThreads, P == 16 ? 2 : 1) softmax_kernel(SoftmaxParams<T> p) {
  constexpr float kLog2e = 1.4426950408889634f;
  const int tpr = p.tpr, lane = static_cast<int>(threadIdx.x) % tpr;
  const int64_t row = int64_t{blockIdx.x} * (blockDim.x / tpr) + threadIdx.x / tpr;
  const bool active = row < p.rows.rows;
  const int64_t len = p.rows.len, packs = len / W;
  int64_t o[2] = {0, 0};
  if (active) p.rows.offsets(row, o);
  const T* x = p.x + o[0];
  T* out = p.out + o[1];
  // Packs of W > 1 imply unit columns (see packs_fit).
  const int64_t cx = W > 1 ? 1 : p.rows.col_stride[0], co = W > 1 ? 1 : p.rows.col_stride[1];
  // Columns [0, kept) survive the causal mask (j <= i + query_offset).
  int64_t kept = len;
  if (Causal && p.causal) {
    const int64_t last = row % p.sq + p.query_offset;
    kept = last < 0 ? 0 : (last + 1 < len ? last + 1 : len);
  }
  // Elements of pack j that are kept (0..W).
  auto kept_in = [&](int64_t j) {
    const int64_t r = kept - j * W;
    return static_cast<int>(r < 0 ? 0 : (r > W ? W : r));
  };
  // Element e of a pack with `n` kept elements, scaled, or -inf where masked.
  auto value = [&](const float(&f)[W], int n, int e) {
    const float v = f[e] * p.scale;
    return Causal && e >= n ? -INFINITY : v;
  };
  auto load = [&](int64_t j) { return load_pack<T, W>(x + j * W * cx); };
  auto live = [&](int64_t j) { return active && j < packs && (!Causal || j * W < kept); };

  // The row stays in registers as stored (16 bytes per pack); masked packs are never loaded.
  Pack<T, W> v[P];
#pragma unroll
  for (int k = 0; k < P; ++k) {
    const int64_t j = lane + int64_t{k} * tpr;
    if (live(j)) v[k] = load(j);
  }
  float max = -INFINITY;
  if constexpr (Packed<T, W, Causal>) {
    // The stored values two at a time (one instruction per pair), scaled once at the end: rounding is
    // monotonic, so the max of the scaled values is the scaled max (for a negative scale, the scaled min).
    using H2 = Pair<T>;
    uint32_t hi_bits = std::is_same_v<T, bf16> ? 0xff80ff80u : 0xfc00fc00u, lo_bits = hi_bits ^ 0x80008000u;
    H2 hi = *reinterpret_cast<const H2*>(&hi_bits), lo = *reinterpret_cast<const H2*>(&lo_bits);
    auto fold = [&](auto use_max) {
      auto pairs = [&](const Pack<T, W>& a) {
#pragma unroll
        for (int e = 0; e < W / 2; ++e) {
          const H2 h = reinterpret_cast<const H2*>(&a)[e];
          if constexpr (decltype(use_max)::value)
            hi = __hmax2(hi, h);
          else
            lo = __hmin2(lo, h);
        }
      };
#pragma unroll
      for (int k = 0; k < P; ++k)
        if (live(lane + int64_t{k} * tpr)) pairs(v[k]);
      for (int64_t j = lane + int64_t{P} * tpr; live(j); j += tpr) pairs(load(j));
    };
    if (p.scale >= 0.f)
      fold(std::true_type{});
    else
      fold(std::false_type{});
    const Pack<T, 2> h = *reinterpret_cast<const Pack<T, 2>*>(&hi),
                     l = *reinterpret_cast<const Pack<T, 2>*>(&lo);
    max = p.scale >= 0.f ? fmaxf(to_f32(h.v[0]), to_f32(h.v[1])) * p.scale
                         : fminf(to_f32(l.v[0]), to_f32(l.v[1])) * p.scale;
  } else {
    auto pack_max = [&](const Pack<T, W>& a, int64_t j) {
      const int n = Causal ? kept_in(j) : W;
      float f[W];
      widen(a, f);
#pragma unroll
      for (int e = 0; e < W; ++e) max = fmaxf(max, value(f, n, e));
    };
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const int64_t j = lane + int64_t{k} * tpr;
      if (live(j)) pack_max(v[k], j);
    }
    for (int64_t j = lane + int64_t{P} * tpr; live(j); j += tpr) pack_max(load(j), j);
  }
  max = row_max(max, tpr);
  // A fully masked row has max -inf; shifting by 0 keeps every exp at exactly 0 instead of NaN.
  const float shift = kept == 0 ? 0.f : max;
  // 2^((value - shift) log2 e). f32 takes the difference before the scaling by log2(e) so that large inputs
  // lose no accuracy; the 16-bit types take one fma of the stored element, whose pre-scaled terms round
  // far below the output's own rounding.
  const float x_log2 = p.scale * kLog2e, shift_log2 = shift * kLog2e;
  auto exp_of = [&](const float(&f)[W], int n, int e) {
    if constexpr (sizeof(T) == 2) {
      const float t = fmaf(f[e], x_log2, -shift_log2);
      return fast_exp2(Causal && e >= n ? -INFINITY : t);
    } else {
      return fast_exp2((value(f, n, e) - shift) * kLog2e);
    }
  };
  float sum = 0;
  auto pack_sum = [&](const Pack<T, W>& a, int64_t j) {
    const int n = Causal ? kept_in(j) : W;
    float f[W], s = 0;
    widen(a, f);
#pragma unroll
    for (int e = 0; e < W; ++e) s += exp_of(f, n, e);
    sum += s;
  };
#pragma unroll
  for (int k = 0; k < P; ++k) {
    const int64_t j = lane + int64_t{k} * tpr;
    if (live(j)) pack_sum(v[k], j);
  }
  for (int64_t j = lane + int64_t{P} * tpr; live(j); j += tpr) pack_sum(load(j), j);
  sum = row_sum(sum, tpr);
  if (!active) return;
  const float inv = 1.f / sum;
  const float log_sum = logf(sum);
  // The 16-bit types divide by the sum inside the exponent: one fma and one exp per element.
  const float out_shift_log2 = shift_log2 + log2f(sum);

  // Masked columns are exact (0 or -inf) even when a NaN elsewhere poisons the row.
  auto write = [&](int64_t j, const Pack<T, W>& a) {
    const int n = Causal ? kept_in(j) : W;
    float f[W], y[W];
    widen(a, f);
    if (p.log) {
#pragma unroll
      for (int e = 0; e < W; ++e) {
        if constexpr (sizeof(T) == 2)  // an instruction and a rounding fewer than value() - shift
          y[e] = Causal && e >= n ? -INFINITY : fmaf(f[e], p.scale, -shift) - log_sum;
        else
          y[e] = Causal && e >= n ? -INFINITY : value(f, n, e) - shift - log_sum;
      }
    } else {
#pragma unroll
      for (int e = 0; e < W; ++e) {
        if constexpr (sizeof(T) == 2)
          y[e] = Causal && e >= n ? 0.f : fast_exp2(fmaf(f[e], x_log2, -out_shift_log2));
        else
          y[e] = Causal && e >= n ? 0.f : exp_of(f, n, e) * inv;
      }
    }
    store_pack<T, W>(out + j * W * co, pack_from_f32<T, W>(y));
  };
  // Packs that were not loaded are wholly masked: write() never looks at their contents.
#pragma unroll
  for (int k = 0; k < P; ++k) {
    const int64_t j = lane + int64_t{k} * tpr;
    if (j < packs) write(j, v[k]);
  }
  for (int64_t j = lane + int64_t{P} * tpr; j < packs; j += tpr) write(j, live(j) ? load(j) : Pack<T, W>{});
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
  const RowLaunch rl = row_launch(p.rows.rows, vec ? p.rows.len / V : p.rows.len, vec, kLongRowPacks<T>);
  p.tpr = rl.tpr;
  const cudaStream_t stream = stream_of(x);
  if (!vec)
    softmax_kernel<T, 1, kSmallPacks, true><<<rl.blocks, rl.threads, 0, stream>>>(p);
  else if (rl.packs == kLongRowPacks<T> && p.causal)
    softmax_kernel<T, V, kLongRowPacks<T>, true><<<rl.blocks, rl.threads, 0, stream>>>(p);
  else if (rl.packs == kLongRowPacks<T>)
    softmax_kernel<T, V, kLongRowPacks<T>, false><<<rl.blocks, rl.threads, 0, stream>>>(p);
  else if (p.causal)
    softmax_kernel<T, V, kSmallPacks, true><<<rl.blocks, rl.threads, 0, stream>>>(p);
  else
    softmax_kernel<T, V, kSmallPacks, false><<<rl.blocks, rl.threads, 0, stream>>>(p);
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
