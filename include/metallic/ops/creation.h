// Tensors made from nothing: constants, ranges and seeded random draws.
#pragma once

#include <cstdint>
#include <memory>

#include "metallic/core/tensor.h"

namespace metallic {

/// A tensor of `shape` filled with `value` (converted to `dtype`).
Tensor full(const std::shared_ptr<Context>& context, const Shape& shape, double value,
            DType dtype = DType::F32);
/// All zeros.
Tensor zeros(const std::shared_ptr<Context>& context, const Shape& shape, DType dtype = DType::F32);
/// All ones.
Tensor ones(const std::shared_ptr<Context>& context, const Shape& shape, DType dtype = DType::F32);
/// Zeros with the shape, dtype and context of `like`.
Tensor zeros_like(const Tensor& like);
/// Ones with the shape, dtype and context of `like`.
Tensor ones_like(const Tensor& like);
/// Sets every element of the view `dst` to `value`.
void fill(const Tensor& dst, double value);
/// 1-D tensor start, start + step, ... below `end` (above it for a negative step).
Tensor arange(const std::shared_ptr<Context>& context, double start, double end, double step = 1.0,
              DType dtype = DType::F32);
/// Uniform draws in [low, high); element i depends only on (seed, i), on every backend.
Tensor uniform(const std::shared_ptr<Context>& context, const Shape& shape, uint64_t seed, double low = 0.0,
               double high = 1.0, DType dtype = DType::F32);
/// Normal draws N(mean, std^2); element i depends only on (seed, i), on every backend.
Tensor normal(const std::shared_ptr<Context>& context, const Shape& shape, uint64_t seed, double mean = 0.0,
              double std = 1.0, DType dtype = DType::F32);

}  // namespace metallic
