// RoPE cases on x [B8, S2048, H32, D128] bf16, out of place, both pairings; plus in place.
#include "metallic/ops/rope.h"

#include "bench.h"
#include "metallic/ops/creation.h"

METALLIC_BENCH(rope_bf16) {
  using namespace metallic;
  const int64_t b = 8, s = 2048, heads = 32, d = 128;
  const Tensor x = normal(h.context(), {b, s, heads, d}, 1, 0, 1, DType::BF16);
  const Tensor out = Tensor::empty(h.context(), {b, s, heads, d}, DType::BF16);
  const double bytes = 2.0 * static_cast<double>(x.nbytes());
  const std::string shape = "B8S2048H32D128";
  h.report("rope_neox", shape, "bf16", h.time_ms([&] { rope(x, {.style = RopeStyle::Neox}, out); }), bytes,
           0);
  h.report("rope_interleaved", shape, "bf16",
           h.time_ms([&] { rope(x, {.style = RopeStyle::Interleaved}, out); }), bytes, 0);
  h.report("rope_neox_inplace", shape, "bf16", h.time_ms([&] { rope(out, {.style = RopeStyle::Neox}, out); }),
           bytes, 0);
}
