// Walks every index of a shape, keeping one element offset per operand, for strided CPU kernels.
#pragma once

#include <array>
#include <cstdint>

#include "metallic/core/dims.h"

namespace metallic::cpu {

/// Calls `f(i, offsets)` for each row-major linear index i of `shape`, where offsets[k] is the
/// element offset of that index under `strides[k]`.
template <size_t N, class F>
void for_each_offset(const Shape& shape, const std::array<Strides, N>& strides, F&& f) {
  const int64_t total = shape.numel();
  if (total == 0) return;
  std::array<int64_t, kMaxDims> index{};
  std::array<int64_t, N> offsets{};
  const int rank = shape.rank();
  for (int64_t i = 0; i < total; ++i) {
    f(i, offsets);
    for (int d = rank - 1; d >= 0; --d) {
      for (size_t k = 0; k < N; ++k) offsets[k] += strides[k][d];
      if (++index[static_cast<size_t>(d)] < shape[d]) break;
      for (size_t k = 0; k < N; ++k) offsets[k] -= strides[k][d] * shape[d];
      index[static_cast<size_t>(d)] = 0;
    }
  }
}

}  // namespace metallic::cpu
