// CUDA normalisations: one pass over memory. tpr threads own a row (a warp per 256 packs or fewer) and
// keep it in registers (P packs each) between the reductions and the write; rows longer than that re-read
// the excess. Rows whose operands are not 16-byte aligned take the same code with one-element packs.
#include <cstdint>
#include <type_traits>

#include "backend/cuda/pdl.cuh"
#include "backend/cuda/rows.cuh"
#include "backend/norms.h"

namespace metallic::cuda {
namespace {

enum class NormKind { Rms, AddRms, Layer };

// Operands in RowLayout order: x, residual, sum, out (unused ones repeat x or out).
template <class T, class Wt>
struct NormParams {
  const T* x;
  const T* residual;
  T* sum;
  T* out;
  const Wt* weight;  // null: ones
  const Wt* bias;    // null: zeros
  int64_t weight_stride, bias_stride;
  float eps;
  int tpr;
  RowLayout<4> rows;
};

// Packs per thread for long rows (128 bytes): on an H200, 4096-wide f32 RMS norm rows ran faster than with
// 16 (fewer warps per SM). The 16-bit RMS norm ran faster with kSmallPacks (0.85 of copy bandwidth against
// 0.83), and so does LayerNorm in its Full form (bf16 0.79 against 0.77 with 8 packs and its checks; f32
// 0.89 either way); AddRms also holds the residual and takes kSmallPacks.
constexpr int kLongRowPacks = 8;

template <class T>
constexpr int long_row_packs(NormKind kind) {
  return kind == NormKind::Rms && sizeof(T) == 4 ? kLongRowPacks : kSmallPacks;
}

// Blocks per SM that an instance's register budget must allow. f32 LayerNorm rows in the Full form fit in 45
// registers without spilling, and five blocks of 256 threads then share an SM instead of four (16384 x 4096
// on an H200: 0.915 of copy bandwidth against 0.891-0.896); the 16-bit forms spill under that cap (bf16
// 0.63 against 0.79).
template <class T, NormKind K, bool Full>
constexpr int norm_min_blocks() {
  return K == NormKind::Layer && Full && sizeof(T) == 4 ? 5 : 1;
}

// One instance per kind: the kind's work (the residual sum, the mean) is fixed at compile time, so no
// instance carries the others' branches. Packs are counted in 32 bits (a row holds fewer than 2^31
// elements).
// Full: every row is exactly tpr * P packs, so each thread owns P of them; the threads of a row past the
// last one read that last row and store nothing. No per-pack bounds checks or re-reads then remain.
template <class T, class Wt, int W, int P, NormKind K, bool Full>
__global__ void __launch_bounds__(kMaxRowThreads, norm_min_blocks<T, K, Full>())
    norm_kernel(NormParams<T, Wt> p) {
  static_assert(!Full || K != NormKind::AddRms, "the residual sum would be stored for rows past the last");
  wait_for_producer();
  allow_dependents();
  constexpr bool add = K == NormKind::AddRms, layer = K == NormKind::Layer;
  const int tpr = p.tpr, lane = static_cast<int>(threadIdx.x) % tpr;
  const int64_t row = int64_t{blockIdx.x} * (blockDim.x / tpr) + threadIdx.x / tpr;
  const bool active = row < p.rows.rows;
  const int len = static_cast<int>(p.rows.len), packs = len / W;
  int64_t o[4] = {0, 0, 0, 0};
  if constexpr (Full)
    p.rows.offsets(active ? row : p.rows.rows - 1, o);
  else if (active)
    p.rows.offsets(row, o);
  const T* x = p.x + o[0];
  const T* res = p.residual + o[1];
  T* sum = p.sum + o[2];
  T* out = p.out + o[3];
  // Packs of W > 1 imply unit columns (see packs_fit): constants spare the index arithmetic.
  const int64_t cx = W > 1 ? 1 : p.rows.col_stride[0], cr = W > 1 ? 1 : p.rows.col_stride[1],
                cs = W > 1 ? 1 : p.rows.col_stride[2], co = W > 1 ? 1 : p.rows.col_stride[3];

  auto add_packs = [](const Pack<T, W>& a, const Pack<T, W>& b) {
    float f[W], g[W];
    widen(a, f);
    widen(b, g);
#pragma unroll
    for (int e = 0; e < W; ++e) f[e] += g[e];
    return pack_from_f32<T, W>(f);
  };
  // Pack j of the row as stored (for AddRms: the rounded sum, which is also written out).
  auto read = [&](int j) {
    Pack<T, W> a = load_pack<T, W>(x + j * W * cx);
    if constexpr (add) {
      a = add_packs(a, load_pack<T, W>(res + j * W * cr));
      store_pack<T, W>(sum + j * W * cs, a);
    }
    return a;
  };
  // Re-reads pack j of an over-long row (the stored sum for AddRms).
  auto reread = [&](int j) {
    return add ? load_pack<T, W>(sum + j * W * cs) : load_pack<T, W>(x + j * W * cx);
  };
  // One short chain per pack, so that the packs' sums proceed side by side (the sum of squares for the
  // RMS norms, the plain sum for LayerNorm).
  auto accumulate = [&](const Pack<T, W>& a, float& acc) {
    float f[W], s = 0;
    widen(a, f);
#pragma unroll
    for (int e = 0; e < W; ++e) s = layer ? s + f[e] : fmaf(f[e], f[e], s);
    acc += s;
  };

  // The row stays in registers as stored (16 bytes per pack), widened again where needed.
  // All loads are issued before the first store (sum may alias the inputs, which would serialise them).
  // Packs this thread owns.
  const int mine = Full ? P : active && lane < packs ? (packs - lane + tpr - 1) / tpr : 0;
  Pack<T, W> v[P], r[P];
  float acc = 0;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (k < mine) {
      v[k] = load_pack<T, W>(x + (lane + k * tpr) * W * cx);
      if constexpr (add) r[k] = load_pack<T, W>(res + (lane + k * tpr) * W * cr);
    }
  }
  if constexpr (add) {
#pragma unroll
    for (int k = 0; k < P; ++k) {
      if (k < mine) {
        v[k] = add_packs(v[k], r[k]);
        store_pack<T, W>(sum + (lane + k * tpr) * W * cs, v[k]);
      }
    }
  }
#pragma unroll
  for (int k = 0; k < P; ++k)
    if (k < mine) accumulate(v[k], acc);
  for (int k = P; k < mine; ++k) accumulate(read(lane + k * tpr), acc);
  const float n = static_cast<float>(len);
  float mean = 0, inv;
  if constexpr (layer) {
    // The exact two-pass variance: the mean first, then the squared deviations from it (a second pass over
    // the registers), each closed by one reduction.
    mean = row_sum(acc, tpr) / n;
    float m2 = 0.f;
    auto deviation = [&](const Pack<T, W>& a) {
      float f[W], s = 0;
      widen(a, f);
#pragma unroll
      for (int e = 0; e < W; ++e) s = fmaf(f[e] - mean, f[e] - mean, s);
      m2 += s;
    };
#pragma unroll
    for (int k = 0; k < P; ++k)
      if (k < mine) deviation(v[k]);
    for (int k = P; k < mine; ++k) deviation(reread(lane + k * tpr));
    inv = rsqrtf(row_sum(m2, tpr) / n + p.eps);
  } else {
    inv = rsqrtf(row_sum(acc, tpr) / n + p.eps);
  }
  if (!active) return;

  // Pack j normalised, scaled and shifted.
  const bool has_weight = p.weight != nullptr, has_bias = layer && p.bias != nullptr;
  auto normed = [&](int j, const Pack<T, W>& a) {
    float y[W], w[W], b[W];
    widen(a, y);
#pragma unroll
    for (int e = 0; e < W; ++e) y[e] = (y[e] - mean) * inv;
    if (has_weight) {
      widen(load_pack<Wt, W>(p.weight + j * W * (W > 1 ? 1 : p.weight_stride)), w);
      if (has_bias) {
        widen(load_pack<Wt, W>(p.bias + j * W * (W > 1 ? 1 : p.bias_stride)), b);
#pragma unroll
        for (int e = 0; e < W; ++e) y[e] = fmaf(y[e], w[e], b[e]);
      } else {
#pragma unroll
        for (int e = 0; e < W; ++e) y[e] *= w[e];
      }
    } else if (has_bias) {
      widen(load_pack<Wt, W>(p.bias + j * W * (W > 1 ? 1 : p.bias_stride)), b);
#pragma unroll
      for (int e = 0; e < W; ++e) y[e] += b[e];
    }
    return pack_from_f32<T, W>(y);
  };
  // No load moves past a store_pack, so every register-resident pack is finished (its parameters loaded)
  // before the first store: one load latency per row instead of one per pack.
#pragma unroll
  for (int k = 0; k < P; ++k)
    if (k < mine) v[k] = normed(lane + k * tpr, v[k]);
#pragma unroll
  for (int k = 0; k < P; ++k)
    if (k < mine) store_pack<T, W>(out + (lane + k * tpr) * W * co, v[k]);
  for (int k = P; k < mine; ++k)
    store_pack<T, W>(out + (lane + k * tpr) * W * co, normed(lane + k * tpr, reread(lane + k * tpr)));
}

template <class T, class Wt>
void launch(NormKind kind, const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,
            float eps, const Tensor& sum, const Tensor& out) {
  NormParams<T, Wt> p{};
  p.x = x.data_as<T>();
  p.residual = residual.data_as<T>();
  p.sum = sum.data_as<T>();
  p.out = out.data_as<T>();
  p.weight = weight.defined() ? weight.data_as<Wt>() : nullptr;
  p.bias = bias.defined() ? bias.data_as<Wt>() : nullptr;
  p.weight_stride = weight.defined() ? weight.stride(0) : 0;
  p.bias_stride = bias.defined() ? bias.stride(0) : 0;
  p.eps = eps;
  const std::array<const Tensor*, 4> ops = {&x, &residual, &sum, &out};
  p.rows = make_row_layout<4>(x.shape(), ops);
  check(p.rows.len <= INT32_MAX, ErrorCode::InvalidArgument, "norm: rows of ", p.rows.len,
        " elements are longer than 2^31 - 1");
  constexpr int V = kVec<T>;
  // The parameter vectors must be read in packs too (an f32 weight with 16-bit x: two accesses per pack).
  auto param_fits = [&](const Tensor& t) {
    return !t.defined() ||
           (t.stride(0) == 1 && reinterpret_cast<uintptr_t>(t.data()) % (V * sizeof(Wt)) == 0);
  };
  const bool vec = packs_fit<4>(p.rows, ops, V) && param_fits(weight) && param_fits(bias);
  const bool add = kind == NormKind::AddRms;
  const RowLaunch rl =
      row_launch(p.rows.rows, vec ? p.rows.len / V : p.rows.len, vec, long_row_packs<T>(kind));
  p.tpr = rl.tpr;
  const cudaStream_t stream = stream_of(x);
  // Whole rows of tpr * P packs take the Full form (16384 x 4096 on an H200: RMS norm bf16 0.84-0.86 of
  // copy bandwidth against 0.83-0.85, f32 0.915-0.918 against 0.897-0.902). LayerNorm gains with 4 packs per
  // thread; with 8 the compiler keeps every widened element of its two passes live (117 registers against
  // 64, and 0.68-0.70 against 0.75-0.77). The residual sum gained nothing.
  const bool full = vec && p.rows.len / V == int64_t{rl.tpr} * rl.packs;
  auto vector_kernel = [&](auto kind, auto packs) {
    constexpr NormKind K = decltype(kind)::value;
    constexpr int P = decltype(packs)::value;
    if constexpr (K != NormKind::AddRms)
      if (full)
        return launch_dependent(norm_kernel<T, Wt, V, P, K, true>, rl.blocks, rl.threads, 0, stream, p);
    launch_dependent(norm_kernel<T, Wt, V, P, K, false>, rl.blocks, rl.threads, 0, stream, p);
  };
  auto go = [&](auto kind) {
    constexpr NormKind K = decltype(kind)::value;
    // row_launch gave each thread kSmallPacks or this kind's long-row count.
    constexpr int kLong = long_row_packs<T>(K);
    if (!vec)
      launch_dependent(norm_kernel<T, Wt, 1, kSmallPacks, K, false>, rl.blocks, rl.threads, 0, stream, p);
    else if (rl.packs == kLong)
      vector_kernel(kind, std::integral_constant<int, kLong>{});
    else
      vector_kernel(kind, std::integral_constant<int, kSmallPacks>{});
  };
  if (kind == NormKind::Rms)
    go(std::integral_constant<NormKind, NormKind::Rms>{});
  else if (add)
    go(std::integral_constant<NormKind, NormKind::AddRms>{});
  else
    go(std::integral_constant<NormKind, NormKind::Layer>{});
}

void dispatch(NormKind kind, const Tensor& x, const Tensor& residual, const Tensor& weight,
              const Tensor& bias, float eps, const Tensor& sum, const Tensor& out) {
  const Tensor& param = weight.defined() ? weight : bias;
  const bool f32_params = param.defined() && param.dtype() == DType::F32;
  switch (x.dtype()) {
    case DType::F32: return launch<float, float>(kind, x, residual, weight, bias, eps, sum, out);
    case DType::F16:
      return f32_params ? launch<f16, float>(kind, x, residual, weight, bias, eps, sum, out)
                        : launch<f16, f16>(kind, x, residual, weight, bias, eps, sum, out);
    case DType::BF16:
      return f32_params ? launch<bf16, float>(kind, x, residual, weight, bias, eps, sum, out)
                        : launch<bf16, bf16>(kind, x, residual, weight, bias, eps, sum, out);
    default: fail(ErrorCode::NotSupported, "norm: dtype ", name(x.dtype()), " is not supported");
  }
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) {
  dispatch(NormKind::Rms, x, x, weight, Tensor(), eps, out, out);
}

void add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, float eps, const Tensor& sum,
                  const Tensor& normed) {
  dispatch(NormKind::AddRms, x, residual, weight, Tensor(), eps, sum, normed);
}

void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, const Tensor& out) {
  dispatch(NormKind::Layer, x, x, weight, bias, eps, out, out);
}

}  // namespace metallic::cuda
