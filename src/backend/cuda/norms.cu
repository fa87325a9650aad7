// CUDA normalisations: one pass over memory. tpr threads own a row and keep it in registers (up to
// kRowPacks 16-byte packs each) between the reductions and the write; rows longer than that re-read the
// excess. Rows whose operands are not 16-byte aligned take the same code with one-element packs.
#include "backend/cuda/rows.cuh"
#include "backend/norms.h"

namespace metallic::cuda {
namespace {

using backend::load;
using backend::store;

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
  NormKind kind;
  RowLayout<4> rows;
};

template <class T, class Wt, int W>
__global__ void norm_kernel(NormParams<T, Wt> p) {
  const int tpr = p.tpr, lane = static_cast<int>(threadIdx.x) % tpr;
  const int64_t row = int64_t{blockIdx.x} * (blockDim.x / tpr) + threadIdx.x / tpr;
  const bool active = row < p.rows.rows;
  const int64_t len = p.rows.len, packs = len / W;
  int64_t o[4] = {0, 0, 0, 0};
  if (active) p.rows.offsets(row, o);
  const T* x = p.x + o[0];
  const T* res = p.residual + o[1];
  T* sum = p.sum + o[2];
  T* out = p.out + o[3];
  const int64_t cx = p.rows.col_stride[0], cr = p.rows.col_stride[1], cs = p.rows.col_stride[2],
                co = p.rows.col_stride[3];
  const bool add = p.kind == NormKind::AddRms;

  // Reads pack j as floats (for AddRms: writes the rounded sum and returns it as stored).
  auto read = [&](int64_t j, float(&v)[W]) {
    const Pack<T, W> a = load_pack<T, W>(x + j * W * cx);
    if (add) {
      const Pack<T, W> b = load_pack<T, W>(res + j * W * cr);
      Pack<T, W> s;
#pragma unroll
      for (int e = 0; e < W; ++e) s.v[e] = store<T>(load(a.v[e]) + load(b.v[e]));
      store_pack<T, W>(sum + j * W * cs, s);
#pragma unroll
      for (int e = 0; e < W; ++e) v[e] = load(s.v[e]);
    } else {
#pragma unroll
      for (int e = 0; e < W; ++e) v[e] = load(a.v[e]);
    }
  };
  // Re-reads pack j of an over-long row (the stored sum for AddRms).
  auto reread = [&](int64_t j, float(&v)[W]) {
    const Pack<T, W> a = add ? load_pack<T, W>(sum + j * W * cs) : load_pack<T, W>(x + j * W * cx);
#pragma unroll
    for (int e = 0; e < W; ++e) v[e] = load(a.v[e]);
  };

  float v[kRowPacks][W];
  float acc = 0;
#pragma unroll
  for (int k = 0; k < kRowPacks; ++k) {
    const int64_t j = lane + int64_t{k} * tpr;
    if (active && j < packs) {
      read(j, v[k]);
#pragma unroll
      for (int e = 0; e < W; ++e) acc += p.kind == NormKind::Layer ? v[k][e] : v[k][e] * v[k][e];
    }
  }
  for (int64_t j = lane + int64_t{kRowPacks} * tpr; active && j < packs; j += tpr) {
    float t[W];
    read(j, t);
#pragma unroll
    for (int e = 0; e < W; ++e) acc += p.kind == NormKind::Layer ? t[e] : t[e] * t[e];
  }
  acc = row_sum(acc, tpr);
  const float n = static_cast<float>(len);
  float mean = 0, inv;
  if (p.kind == NormKind::Layer) {
    // Second pass over the registers: the variance about the mean, free of cancellation.
    mean = acc / n;
    float var = 0;
#pragma unroll
    for (int k = 0; k < kRowPacks; ++k) {
      const int64_t j = lane + int64_t{k} * tpr;
      if (active && j < packs)
#pragma unroll
        for (int e = 0; e < W; ++e) var += (v[k][e] - mean) * (v[k][e] - mean);
    }
    for (int64_t j = lane + int64_t{kRowPacks} * tpr; active && j < packs; j += tpr) {
      float t[W];
      reread(j, t);
#pragma unroll
      for (int e = 0; e < W; ++e) var += (t[e] - mean) * (t[e] - mean);
    }
    inv = rsqrtf(row_sum(var, tpr) / n + p.eps);
  } else {
    inv = rsqrtf(acc / n + p.eps);
  }
  if (!active) return;

  auto write = [&](int64_t j, const float(&t)[W]) {
    float w[W], b[W];
#pragma unroll
    for (int e = 0; e < W; ++e) {
      w[e] = 1.f;
      b[e] = 0.f;
    }
    if (p.weight) {
      const Pack<Wt, W> pw = load_pack<Wt, W>(p.weight + j * W * p.weight_stride);
#pragma unroll
      for (int e = 0; e < W; ++e) w[e] = load(pw.v[e]);
    }
    if (p.bias) {
      const Pack<Wt, W> pb = load_pack<Wt, W>(p.bias + j * W * p.bias_stride);
#pragma unroll
      for (int e = 0; e < W; ++e) b[e] = load(pb.v[e]);
    }
    Pack<T, W> r;
#pragma unroll
    for (int e = 0; e < W; ++e) r.v[e] = store<T>((t[e] - mean) * inv * w[e] + b[e]);
    store_pack<T, W>(out + j * W * co, r);
  };
#pragma unroll
  for (int k = 0; k < kRowPacks; ++k) {
    const int64_t j = lane + int64_t{k} * tpr;
    if (j < packs) write(j, v[k]);
  }
  for (int64_t j = lane + int64_t{kRowPacks} * tpr; j < packs; j += tpr) {
    float t[W];
    reread(j, t);
    write(j, t);
  }
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
  p.kind = kind;
  const std::array<const Tensor*, 4> ops = {&x, &residual, &sum, &out};
  p.rows = make_row_layout<4>(x.shape(), ops);
  constexpr int V = kVec<T>;
  // The parameter vectors must be read in packs too (an f32 weight with 16-bit x: two accesses per pack).
  auto param_fits = [&](const Tensor& t) {
    return !t.defined() ||
           (t.stride(0) == 1 && reinterpret_cast<uintptr_t>(t.data()) % (V * sizeof(Wt)) == 0);
  };
  const bool vec = packs_fit<4>(p.rows, ops, V) && param_fits(weight) && param_fits(bias);
  const RowLaunch rl = row_launch(p.rows.rows, vec ? p.rows.len / V : p.rows.len);
  p.tpr = rl.tpr;
  if (vec)
    norm_kernel<T, Wt, V><<<rl.blocks, rl.threads, 0, stream_of(x)>>>(p);
  else
    norm_kernel<T, Wt, 1><<<rl.blocks, rl.threads, 0, stream_of(x)>>>(p);
  MTL_CUDA_CHECK_LAUNCH("norm_kernel");
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
