// Elementwise kernels every backend provides. Arguments arrive validated by src/ops: operands are
// already broadcast (stride-0 views) to the output's shape and share its device.
#pragma once

#include <cstdint>

#include "metallic/core/tensor.h"
#include "metallic/ops/elementwise.h"

namespace metallic::backend {

/// Which distribution random() draws from.
enum class Distribution : uint8_t { Uniform, Normal };

}  // namespace metallic::backend

#define MTL_ELEMENTWISE_KERNELS                                                                          \
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);                         \
  void binary_scalar(BinaryOp op, const Tensor& a, double scalar, bool scalar_first, const Tensor& out); \
  void copy(const Tensor& src, const Tensor& dst);                                                       \
  void fill(const Tensor& dst, double value);                                                            \
  void arange(const Tensor& dst, double start, double step);                                             \
  void random(const Tensor& dst, backend::Distribution dist, uint64_t seed, double p0, double p1);

namespace metallic::cpu {
MTL_ELEMENTWISE_KERNELS
}
namespace metallic::cuda {
MTL_ELEMENTWISE_KERNELS
}
#undef MTL_ELEMENTWISE_KERNELS
