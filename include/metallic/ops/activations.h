// Pointwise activations and the gated SwiGLU unit.
#pragma once

#include "metallic/core/tensor.h"

namespace metallic {

/// Which GELU formula.
enum class GeluApproximation { None, Tanh };

/// x * Phi(x) (erf form) or its tanh approximation.
Tensor gelu(const Tensor& x, GeluApproximation approximation = GeluApproximation::None);
/// gelu into `out` (may alias x).
void gelu(const Tensor& x, GeluApproximation approximation, const Tensor& out);
/// x * sigmoid(x).
Tensor silu(const Tensor& x);
/// silu into `out` (may alias x).
void silu(const Tensor& x, const Tensor& out);
/// silu(gate) * up, both [..., F].
Tensor swiglu(const Tensor& gate, const Tensor& up);
/// swiglu into `out` ([..., F]).
void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out);
/// swiglu of one [..., 2F] tensor laid out [gate | up] along the last dimension, giving [..., F].
Tensor swiglu(const Tensor& gate_up);

}  // namespace metallic
