// Softmax cases: softmax and log_softmax over 16384 x 4096, and the attention-shaped causal softmax with a
// scale over 32 x 2048 x 2048 scores.
#include "metallic/ops/softmax.h"

#include "bench.h"
#include "metallic/ops/creation.h"

namespace metallic::bench {
namespace {

void softmaxes(Harness& h, DType dtype) {
  const auto& ctx = h.context();
  const int64_t rows = 16384, cols = 4096;
  const std::string shape = std::to_string(rows) + "x" + std::to_string(cols), dt(name(dtype));
  const double bytes = 2.0 * static_cast<double>(rows * cols * element_size(dtype));
  const Tensor x = normal(ctx, {rows, cols}, 1, 0, 1, dtype);
  const Tensor out = Tensor::empty(ctx, {rows, cols}, dtype);
  h.report("softmax", shape, dt, h.time_ms([&] { softmax(x, {}, out); }), bytes, 0);
  h.report("log_softmax", shape, dt, h.time_ms([&] { log_softmax(x, {}, out); }), bytes, 0);
}

}  // namespace
}  // namespace metallic::bench

METALLIC_BENCH(softmax_bf16) { metallic::bench::softmaxes(h, metallic::DType::BF16); }
METALLIC_BENCH(softmax_f32) { metallic::bench::softmaxes(h, metallic::DType::F32); }

METALLIC_BENCH(softmax_causal_f32) {
  using namespace metallic;
  const int64_t bh = 32, s = 2048;
  const Tensor x = normal(h.context(), {bh, s, s}, 5, 0, 1, DType::F32);
  const Tensor out = Tensor::empty(h.context(), {bh, s, s}, DType::F32);
  const SoftmaxOptions o{.scale = 0.088f, .causal = true};
  h.report("softmax_causal", "32x2048x2048", "f32", h.time_ms([&] { softmax(x, o, out); }),
           2.0 * static_cast<double>(bh * s * s * 4), 0);
}
