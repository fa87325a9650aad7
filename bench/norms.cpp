// Norm cases: rms_norm, fused residual add + rms_norm and layer_norm on 16384 x 4096 tokens.
#include "metallic/ops/norms.h"

#include "bench.h"
#include "metallic/ops/creation.h"

namespace metallic::bench {
namespace {

constexpr int64_t kRows = 16384, kHidden = 4096;

void norms(Harness& h, DType dtype) {
  const auto& ctx = h.context();
  const std::string shape = std::to_string(kRows) + "x" + std::to_string(kHidden), dt(name(dtype));
  const double elems = static_cast<double>(kRows * kHidden), es = static_cast<double>(element_size(dtype));
  const Tensor x = normal(ctx, {kRows, kHidden}, 1, 0, 1, dtype);
  const Tensor r = normal(ctx, {kRows, kHidden}, 2, 0, 1, dtype);
  const Tensor w = normal(ctx, {kHidden}, 3, 1, 0.1, dtype);
  const Tensor b = normal(ctx, {kHidden}, 4, 0, 0.1, dtype);
  const Tensor out = Tensor::empty(ctx, {kRows, kHidden}, dtype);
  const Tensor sum = Tensor::empty(ctx, {kRows, kHidden}, dtype);
  h.report("rms_norm", shape, dt, h.time_ms([&] { rms_norm(x, w, 1e-6f, out); }), 2 * elems * es, 0);
  h.report("add_rms_norm", shape, dt, h.time_ms([&] { add_rms_norm(x, r, w, 1e-6f, sum, out); }),
           4 * elems * es, 0);
  h.report("layer_norm", shape, dt, h.time_ms([&] { layer_norm(x, w, b, 1e-5f, out); }), 2 * elems * es, 0);
}

}  // namespace
}  // namespace metallic::bench

METALLIC_BENCH(norms_bf16) { metallic::bench::norms(h, metallic::DType::BF16); }
METALLIC_BENCH(norms_f32) { metallic::bench::norms(h, metallic::DType::F32); }
