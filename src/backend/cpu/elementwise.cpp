// CPU reference kernels for arithmetic, copies, fills and random draws: plain strided loops.
#include "backend/elementwise.h"

#include "backend/cpu/strided.h"
#include "backend/random.h"
#include "backend/scalar.h"

namespace metallic::cpu {

using backend::load;
using backend::store;

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  backend::visit_dense(out.dtype(), "binary", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.data_as<T>();
    const T* pb = b.data_as<T>();
    T* po = out.data_as<T>();
    for_each_offset<3>(out.shape(), {a.strides(), b.strides(), out.strides()}, [&](int64_t, const auto& o) {
      po[o[2]] = store<T>(backend::apply_binary(op, load(pa[o[0]]), load(pb[o[1]])));
    });
  });
}

void binary_scalar(BinaryOp op, const Tensor& a, double scalar, bool scalar_first, const Tensor& out) {
  backend::visit_dense(out.dtype(), "binary", [&](auto tag) {
    using T = decltype(tag);
    using C = backend::compute_t<T>;
    const C s = backend::store<C>(scalar);
    const T* pa = a.data_as<T>();
    T* po = out.data_as<T>();
    for_each_offset<2>(out.shape(), {a.strides(), out.strides()}, [&](int64_t, const auto& o) {
      const C x = load(pa[o[0]]);
      po[o[1]] = store<T>(scalar_first ? backend::apply_binary(op, s, x) : backend::apply_binary(op, x, s));
    });
  });
}

void copy(const Tensor& src, const Tensor& dst) {
  backend::visit_dense(src.dtype(), "copy", [&](auto src_tag) {
    using S = decltype(src_tag);
    backend::visit_dense(dst.dtype(), "copy", [&](auto dst_tag) {
      using D = decltype(dst_tag);
      const S* ps = src.data_as<S>();
      D* pd = dst.data_as<D>();
      for_each_offset<2>(dst.shape(), {src.strides(), dst.strides()},
                         [&](int64_t, const auto& o) { pd[o[1]] = backend::convert<D>(ps[o[0]]); });
    });
  });
}

void fill(const Tensor& dst, double value) {
  backend::visit_dense(dst.dtype(), "fill", [&](auto tag) {
    using T = decltype(tag);
    const T v = store<T>(value);
    T* pd = dst.data_as<T>();
    for_each_offset<1>(dst.shape(), {dst.strides()}, [&](int64_t, const auto& o) { pd[o[0]] = v; });
  });
}

void arange(const Tensor& dst, double start, double step) {
  backend::visit_dense(dst.dtype(), "arange", [&](auto tag) {
    using T = decltype(tag);
    T* pd = dst.data_as<T>();
    for_each_offset<1>(dst.shape(), {dst.strides()}, [&](int64_t i, const auto& o) {
      pd[o[0]] = store<T>(start + static_cast<double>(i) * step);
    });
  });
}

void random(const Tensor& dst, backend::Distribution dist, uint64_t seed, double p0, double p1) {
  backend::visit_dense(dst.dtype(), "random", [&](auto tag) {
    using T = decltype(tag);
    T* pd = dst.data_as<T>();
    for_each_offset<1>(dst.shape(), {dst.strides()}, [&](int64_t i, const auto& o) {
      const auto u = static_cast<uint64_t>(i);
      const double r = dist == backend::Distribution::Uniform ? p0 + (p1 - p0) * backend::uniform01(seed, u)
                                                              : p0 + p1 * backend::normal01(seed, u);
      pd[o[0]] = store<T>(r);
    });
  });
}

}  // namespace metallic::cpu
