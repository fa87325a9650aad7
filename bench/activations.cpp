// Activation cases on 16384 x 4096: silu, both GELUs, and SwiGLU from two tensors and from one [gate | up].
#include "metallic/ops/activations.h"

#include "bench.h"
#include "metallic/ops/creation.h"

namespace metallic::bench {
namespace {

void activations(Harness& h, DType dtype) {
  const auto& ctx = h.context();
  const int64_t rows = 16384, cols = 4096;
  const std::string shape = std::to_string(rows) + "x" + std::to_string(cols), dt(name(dtype));
  const double tensor_bytes = static_cast<double>(rows * cols * element_size(dtype));
  const Tensor x = normal(ctx, {rows, cols}, 1, 0, 1, dtype);
  const Tensor u = normal(ctx, {rows, cols}, 2, 0, 1, dtype);
  const Tensor out = Tensor::empty(ctx, {rows, cols}, dtype);
  h.report("silu", shape, dt, h.time_ms([&] { silu(x, out); }), 2 * tensor_bytes, 0);
  h.report("gelu_erf", shape, dt, h.time_ms([&] { gelu(x, GeluApproximation::None, out); }), 2 * tensor_bytes,
           0);
  h.report("gelu_tanh", shape, dt, h.time_ms([&] { gelu(x, GeluApproximation::Tanh, out); }),
           2 * tensor_bytes, 0);
  h.report("swiglu", shape, dt, h.time_ms([&] { swiglu(x, u, out); }), 3 * tensor_bytes, 0);
  const Tensor gate_up = normal(ctx, {rows, 2 * cols}, 3, 0, 1, dtype);
  const Tensor g = gate_up.narrow(1, 0, cols), up = gate_up.narrow(1, cols, cols);
  h.report("swiglu_fused", shape, dt, h.time_ms([&] { swiglu(g, up, out); }), 3 * tensor_bytes, 0);
}

}  // namespace
}  // namespace metallic::bench

METALLIC_BENCH(activations_bf16) { metallic::bench::activations(h, metallic::DType::BF16); }
METALLIC_BENCH(activations_f32) { metallic::bench::activations(h, metallic::DType::F32); }
