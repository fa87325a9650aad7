// Activation kernels every backend provides. Arguments arrive validated by src/ops: all operands share one
// shape, dtype and device (gate and up may be strided halves of one [gate | up] tensor).
#pragma once

#include <cstdint>

#include "metallic/core/tensor.h"

namespace metallic::backend {

/// Which pointwise function activation() applies.
enum class Activation : uint8_t { GeluErf, GeluTanh, Silu };

}  // namespace metallic::backend

#define MTL_ACTIVATION_KERNELS                                                 \
  void activation(backend::Activation op, const Tensor& x, const Tensor& out); \
  void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out);

namespace metallic::cpu {
MTL_ACTIVATION_KERNELS
}
namespace metallic::cuda {
MTL_ACTIVATION_KERNELS
}
#undef MTL_ACTIVATION_KERNELS
