// CUDA activations: each thread moves kStreamPacks 16-byte packs per operand (all loads issued before the
// math), rows of [..., F] views spread over grid.y. Dense operands are treated as one long row; a row
// tail shorter than a pack, or operands that are not 16-byte aligned, take the one-element path.
#include "backend/activations.h"
#include "backend/cuda/pdl.cuh"
#include "backend/cuda/rows.cuh"

namespace metallic::cuda {
namespace {

using backend::Activation;

constexpr int kThreads = kStreamThreads;
constexpr int kUnroll = 4;  // elements per thread on the one-element path

// x * sigmoid(x); the tanh GELU is x * sigmoid(2u) (1 + tanh(u) = 2 sigmoid(2u)), which costs one exp. The
// reciprocal of an infinite denominator is 0, so large negative inputs give -0 and -inf gives NaN, as in
// the division form. The erf GELU is x * Phi(x) with Phi(-|x|) = erfc(|x| / sqrt 2) / 2 from a rational
// erfc in t = 1 / (1 + z / 2): in f32 the Chebyshev fit of Numerical Recipes (erfcc: relative error under
// 1.2e-7 for every z >= 0, so the tail where 1 + erf(x) cancels stays accurate; one reciprocal, one exp,
// nine fmas, where normcdff costs several times that); the 16-bit types round away far larger errors than
// the shorter fit of Abramowitz and Stegun (7.1.26: absolute error under 1.5e-7). Both reflect for x > 0.
template <class T, Activation A>
__device__ __forceinline__ float activate(float x) {
  constexpr float kLog2e = 1.4426950408889634f;
  if constexpr (A == Activation::GeluErf) {
    const float z = fabsf(x) * 0.7071067811865476f;
    float half_erfc;  // Phi(-|x|)
    if constexpr (sizeof(T) == 4) {
      const float t = fast_rcp(fmaf(0.5f, z, 1.f));
      float poly = fmaf(0.17087277f, t, -0.82215223f);
      poly = fmaf(poly, t, 1.48851587f);
      poly = fmaf(poly, t, -1.13520398f);
      poly = fmaf(poly, t, 0.27886807f);
      poly = fmaf(poly, t, -0.18628806f);
      poly = fmaf(poly, t, 0.09678418f);
      poly = fmaf(poly, t, 0.37409196f);
      poly = fmaf(poly, t, 1.00002368f);
      poly = fmaf(poly, t, -1.26551223f);
      half_erfc = 0.5f * t * fast_exp2(kLog2e * fmaf(-z, z, poly));
    } else {
      const float t = fast_rcp(fmaf(0.3275911f, z, 1.f));
      float poly = fmaf(1.061405429f, t, -1.453152027f);
      poly = fmaf(poly, t, 1.421413741f);
      poly = fmaf(poly, t, -0.284496736f);
      poly = fmaf(poly, t, 0.254829592f);
      half_erfc = 0.5f * poly * t * fast_exp2(-kLog2e * z * z);
    }
    return x * (x < 0.f ? half_erfc : 1.f - half_erfc);
  } else if constexpr (A == Activation::GeluTanh) {
    const float u = 0.7978845608028654f * fmaf(0.044715f * x, x * x, x);
    return x * fast_rcp(1.f + fast_exp2(-2.f * kLog2e * u));
  } else {
    return x * fast_rcp(1.f + fast_exp2(-kLog2e * x));
  }
}

// Operands in RowLayout order: a (x or gate), b (up; repeats a when unary), out.
template <class T>
struct ActParams {
  const T* a;
  const T* b;
  T* out;
  RowLayout<3> rows;
};

// U packs per thread and operand; any block size.
template <class T, int W, Activation A, bool Gated, int U>
__global__ void activation_kernel(ActParams<T> p) {
  wait_for_producer();
  allow_dependents();
  const int threads = static_cast<int>(blockDim.x);
  const int64_t len = p.rows.len, packs = len / W;
  // Packs of W > 1 imply unit columns: constants spare the index arithmetic.
  const int64_t ca = W > 1 ? 1 : p.rows.col_stride[0], cb = W > 1 ? 1 : p.rows.col_stride[1],
                co = W > 1 ? 1 : p.rows.col_stride[2];
  for (int64_t row = blockIdx.y; row < p.rows.rows; row += gridDim.y) {
    int64_t o[3];
    p.rows.offsets(row, o);
    const T* a = p.a + o[0];
    const T* b = p.b + o[1];
    T* out = p.out + o[2];
    for (int64_t base = int64_t{blockIdx.x} * threads * U; base < packs;
         base += int64_t{gridDim.x} * threads * U) {
      Pack<T, W> va[U], vb[U];
#pragma unroll
      for (int k = 0; k < U; ++k) {
        const int64_t j = base + k * threads + threadIdx.x;
        if (j < packs) {
          va[k] = load_pack<T, W>(a + j * W * ca);
          if constexpr (Gated) vb[k] = load_pack<T, W>(b + j * W * cb);
        }
      }
#pragma unroll
      for (int k = 0; k < U; ++k) {
        const int64_t j = base + k * threads + threadIdx.x;
        if (j < packs) {
          float y[W], g[W];
          widen(va[k], y);
          if constexpr (Gated) widen(vb[k], g);
#pragma unroll
          for (int e = 0; e < W; ++e) {
            y[e] = activate<T, A>(y[e]);
            if constexpr (Gated) y[e] *= g[e];
          }
          store_pack<T, W>(out + j * W * co, pack_from_f32<T, W>(y));
        }
      }
    }
    if (blockIdx.x == 0)
      for (int64_t i = packs * W + threadIdx.x; i < len; i += threads) {
        float y = activate<T, A>(to_f32(a[i * ca]));
        if constexpr (Gated) y *= to_f32(b[i * cb]);
        out[i * co] = from_f32<T>(y);
      }
  }
}

template <class T, Activation A, bool Gated>
void launch(const Tensor& a, const Tensor& b, const Tensor& out) {
  ActParams<T> p{a.data_as<T>(), b.data_as<T>(), out.data_as<T>(), {}};
  const bool dense = a.is_contiguous() && b.is_contiguous() && out.is_contiguous();
  if (dense) {
    // One long row: no per-row index arithmetic, and only the very end can be a partial pack.
    const Tensor fa = a.reshape({a.numel()}), fb = b.reshape({b.numel()}), fo = out.reshape({out.numel()});
    p.rows = make_row_layout<3>(fa.shape(), {&fa, &fb, &fo});
  } else {
    p.rows = make_row_layout<3>(out.shape(), {&a, &b, &out});
  }
  constexpr int V = kVec<T>, P = kStreamPacks<T, (Gated ? 2 : 1)>;
  // Packs need 16-byte aligned row starts and unit columns; a row length that is not a whole number of
  // packs is fine only for a single row (its tail is the one-element loop).
  bool vec = p.rows.rows == 1 || p.rows.len % V == 0;
  const std::array<const Tensor*, 3> ops = {&a, &b, &out};
  for (int k = 0; k < 3 && vec; ++k) {
    vec = p.rows.col_stride[k] == 1 &&
          reinterpret_cast<uintptr_t>(ops[static_cast<size_t>(k)]->data()) % 16 == 0;
    for (int d = 0; d < p.rows.rank && vec; ++d) vec = p.rows.stride[k][d] % V == 0;
  }
  const int64_t packs = vec ? p.rows.len / V : p.rows.len;
  const int unroll = vec ? P : kUnroll;
  const int64_t xblocks = (packs + kThreads * unroll - 1) / (kThreads * unroll);
  const dim3 grid(static_cast<unsigned>(xblocks < 1 ? 1 : (xblocks > 65535 * 32 ? 65535 * 32 : xblocks)),
                  static_cast<unsigned>(p.rows.rows > 65535 ? 65535 : p.rows.rows));
  if (vec)
    launch_dependent(activation_kernel<T, V, A, Gated, P>, grid, kThreads, 0, stream_of(out), p);
  else
    launch_dependent(activation_kernel<T, 1, A, Gated, kUnroll>, grid, kThreads, 0, stream_of(out), p);
}

template <Activation A, bool Gated>
void dispatch(const Tensor& a, const Tensor& b, const Tensor& out) {
  switch (out.dtype()) {
    case DType::F32: return launch<float, A, Gated>(a, b, out);
    case DType::F16: return launch<f16, A, Gated>(a, b, out);
    case DType::BF16: return launch<bf16, A, Gated>(a, b, out);
    default: fail(ErrorCode::NotSupported, "activation: dtype ", name(out.dtype()), " is not supported");
  }
}

}  // namespace

void activation(Activation op, const Tensor& x, const Tensor& out) {
  switch (op) {
    case Activation::GeluErf: return dispatch<Activation::GeluErf, false>(x, x, out);
    case Activation::GeluTanh: return dispatch<Activation::GeluTanh, false>(x, x, out);
    default: return dispatch<Activation::Silu, false>(x, x, out);
  }
}

void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) {
  dispatch<Activation::Silu, true>(gate, up, out);
}

}  // namespace metallic::cuda
