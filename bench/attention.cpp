// Attention cases: bf16 prefill B8 H32 S2048 D128 (causal and not) and decode of one query per
// sequence against a long GQA KV cache (B16, 32 q heads, 8 kv heads, D128).
#include "metallic/ops/attention.h"

#include <cstdint>
#include <string>

#include "bench.h"
#include "metallic/ops/copy.h"
#include "metallic/ops/creation.h"

namespace {

using namespace metallic;

Tensor random_bf16(bench::Harness& h, const Shape& shape, uint64_t seed) {
  return normal(h.context(), shape, seed, 0.0, 1.0, DType::BF16);
}

}  // namespace

METALLIC_BENCH(sdpa_prefill) {
  const int64_t b = 8, heads = 32, s = 2048, d = 128;
  const Tensor q = random_bf16(h, {b, heads, s, d}, 1), k = random_bf16(h, {b, heads, s, d}, 2),
               v = random_bf16(h, {b, heads, s, d}, 3);
  const Tensor out = Tensor::empty(h.context(), {b, heads, s, d}, DType::BF16);
  for (const bool causal : {true, false}) {
    AttentionOptions opt;
    opt.causal = causal;
    const double ms = h.time_ms([&] { scaled_dot_product_attention(q, k, v, opt, out); });
    const double flops = 4.0 * b * heads * static_cast<double>(s) * s * d * (causal ? 0.5 : 1.0);
    h.report("sdpa", "B8H32S2048D128.causal" + std::to_string(causal ? 1 : 0), "bf16", ms, 0, flops);
  }
}

METALLIC_BENCH(sdpa_decode) {
  const int64_t b = 16, hq = 32, hkv = 8, d = 128;
  for (const int64_t len : {int64_t{4096}, int64_t{32768}}) {
    const Tensor q = random_bf16(h, {b, hq, 1, d}, 4), k = random_bf16(h, {b, hkv, len, d}, 5),
                 v = random_bf16(h, {b, hkv, len, d}, 6);
    const Tensor out = Tensor::empty(h.context(), {b, hq, 1, d}, DType::BF16);
    const double ms = h.time_ms([&] { scaled_dot_product_attention(q, k, v, {}, out); });
    h.report("sdpa_decode", "B16.Hq32.Hkv8.L" + std::to_string(len) + ".D128", "bf16", ms,
             static_cast<double>(k.nbytes() + v.nbytes()), 0);
  }
}
