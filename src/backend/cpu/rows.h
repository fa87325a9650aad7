// Row iteration for CPU kernels that work on the last dimension of [..., H] operands.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "backend/cpu/strided.h"
#include "backend/scalar.h"
#include "metallic/core/tensor.h"

namespace metallic::cpu {

/// `dims` without its last entry.
inline Dims drop_last(const Dims& dims) {
  return Dims(std::span<const int64_t>(dims.begin(), static_cast<size_t>(dims.rank() - 1)));
}

/// Calls `f(row, offsets)` for each row of `shape` (all dimensions but the last, row-major), where
/// offsets[k] is the element offset of that row's first element in `operands[k]`.
template <size_t N, class F>
void for_each_row(const Shape& shape, const std::array<const Tensor*, N>& operands, F&& f) {
  std::array<Strides, N> strides;
  for (size_t k = 0; k < N; ++k) strides[k] = drop_last(operands[k]->strides());
  for_each_offset<N>(drop_last(shape), strides, f);
}

/// The elements of a 1-D tensor as doubles; `fallback` repeated `n` times when `t` is undefined.
inline std::vector<double> values_or(const Tensor& t, int64_t n, double fallback) {
  std::vector<double> v(static_cast<size_t>(n), fallback);
  if (!t.defined()) return v;
  backend::visit_dense(t.dtype(), "values_or", [&](auto tag) {
    using T = decltype(tag);
    const T* p = t.data_as<T>();
    for (int64_t i = 0; i < n; ++i)
      v[static_cast<size_t>(i)] = static_cast<double>(backend::load(p[i * t.stride(0)]));
  });
  return v;
}

}  // namespace metallic::cpu
