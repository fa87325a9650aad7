// CPU reference normalisations: one row at a time, accumulated in double.
#include "backend/norms.h"

#include <cmath>

#include "backend/cpu/rows.h"

namespace metallic::cpu {
namespace {

using backend::load;
using backend::store;

// Writes rms_norm of the row `v` (already widened) to out.
template <class T>
void write_rms(const std::vector<double>& v, const std::vector<double>& w, float eps, T* out,
               int64_t stride) {
  double ss = 0;
  for (const double x : v) ss += x * x;
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(v.size()) + eps);
  for (size_t i = 0; i < v.size(); ++i) out[static_cast<int64_t>(i) * stride] = store<T>(v[i] * inv * w[i]);
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) {
  const int64_t h = x.dim(-1);
  const std::vector<double> w = values_or(weight, h, 1.0);
  backend::visit_dense(x.dtype(), "rms_norm", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data_as<T>();
    T* po = out.data_as<T>();
    const int64_t sx = x.stride(-1), so = out.stride(-1);
    std::vector<double> v(static_cast<size_t>(h));
    for_each_row<2>(x.shape(), {&x, &out}, [&](int64_t, const auto& o) {
      for (int64_t i = 0; i < h; ++i) v[static_cast<size_t>(i)] = load(px[o[0] + i * sx]);
      write_rms(v, w, eps, po + o[1], so);
    });
  });
}

void add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, float eps, const Tensor& sum,
                  const Tensor& normed) {
  const int64_t h = x.dim(-1);
  const std::vector<double> w = values_or(weight, h, 1.0);
  backend::visit_dense(x.dtype(), "add_rms_norm", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data_as<T>();
    const T* pr = residual.data_as<T>();
    T* ps = sum.data_as<T>();
    T* pn = normed.data_as<T>();
    const int64_t sx = x.stride(-1), sr = residual.stride(-1), ss = sum.stride(-1), sn = normed.stride(-1);
    std::vector<double> v(static_cast<size_t>(h));
    for_each_row<4>(x.shape(), {&x, &residual, &sum, &normed}, [&](int64_t, const auto& o) {
      // The whole row is read before anything is written, so sum may alias residual (or x).
      for (int64_t i = 0; i < h; ++i)
        v[static_cast<size_t>(i)] = static_cast<double>(load(px[o[0] + i * sx])) + load(pr[o[1] + i * sr]);
      for (int64_t i = 0; i < h; ++i) {
        const T s = store<T>(v[static_cast<size_t>(i)]);
        ps[o[2] + i * ss] = s;
        v[static_cast<size_t>(i)] = load(s);  // normalise the sum as stored
      }
      write_rms(v, w, eps, pn + o[3], sn);
    });
  });
}

void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, const Tensor& out) {
  const int64_t h = x.dim(-1);
  const std::vector<double> w = values_or(weight, h, 1.0);
  const std::vector<double> b = values_or(bias, h, 0.0);
  backend::visit_dense(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data_as<T>();
    T* po = out.data_as<T>();
    const int64_t sx = x.stride(-1), so = out.stride(-1);
    std::vector<double> v(static_cast<size_t>(h));
    for_each_row<2>(x.shape(), {&x, &out}, [&](int64_t, const auto& o) {
      double mean = 0;
      for (int64_t i = 0; i < h; ++i) mean += v[static_cast<size_t>(i)] = load(px[o[0] + i * sx]);
      mean /= static_cast<double>(h);
      double var = 0;
      for (const double e : v) var += (e - mean) * (e - mean);
      const double inv = 1.0 / std::sqrt(var / static_cast<double>(h) + eps);
      for (int64_t i = 0; i < h; ++i) {
        const size_t k = static_cast<size_t>(i);
        po[o[1] + i * so] = store<T>((v[k] - mean) * inv * w[k] + b[k]);
      }
    });
  });
}

}  // namespace metallic::cpu
