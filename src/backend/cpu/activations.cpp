// CPU reference activations: strided loops, math in double.
#include "backend/activations.h"

#include <cmath>

#include "backend/cpu/strided.h"
#include "backend/scalar.h"

namespace metallic::cpu {
namespace {

double apply(backend::Activation op, double x) {
  switch (op) {
    case backend::Activation::GeluErf: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case backend::Activation::GeluTanh: {
      const double k = std::sqrt(2.0 / M_PI);
      return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
    }
    default: return x / (1.0 + std::exp(-x));
  }
}

}  // namespace

void activation(backend::Activation op, const Tensor& x, const Tensor& out) {
  backend::visit_dense(x.dtype(), "activation", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data_as<T>();
    T* po = out.data_as<T>();
    for_each_offset<2>(out.shape(), {x.strides(), out.strides()}, [&](int64_t, const auto& o) {
      po[o[1]] = backend::store<T>(apply(op, backend::load(px[o[0]])));
    });
  });
}

void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) {
  backend::visit_dense(gate.dtype(), "swiglu", [&](auto tag) {
    using T = decltype(tag);
    const T* pg = gate.data_as<T>();
    const T* pu = up.data_as<T>();
    T* po = out.data_as<T>();
    for_each_offset<3>(
        out.shape(), {gate.strides(), up.strides(), out.strides()}, [&](int64_t, const auto& o) {
          const double g = backend::load(pg[o[0]]);
          po[o[2]] = backend::store<T>(apply(backend::Activation::Silu, g) * backend::load(pu[o[1]]));
        });
  });
}

}  // namespace metallic::cpu
