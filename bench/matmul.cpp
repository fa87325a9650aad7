// matmul, linear (GEMV and prefill GEMM, dense and quantized) and embedding cases; peers in
// bench/torch/matmul.py.
#include "metallic/ops/matmul.h"

#include <cstdint>
#include <string>
#include <vector>

#include "bench.h"
#include "metallic/model/quant.h"
#include "metallic/ops/copy.h"
#include "metallic/ops/creation.h"
#include "metallic/ops/embedding.h"

namespace metallic::bench {
namespace {

Tensor random_tensor(Harness& h, const Shape& s, DType t, uint64_t seed) {
  return cast(normal(h.context(), s, seed), t);
}

// A [n, k] weight of a block type: random floats quantized on the host, uploaded.
Tensor quantized_weight(Harness& h, DType t, int64_t n, int64_t k) {
  std::vector<float> v(static_cast<size_t>(n * k));
  uint32_t s = 12345;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = (static_cast<float>(s >> 8) / 16777216.f - 0.5f) * 0.1f;
  }
  const int64_t bytes = storage_bytes(t, n * k);
  std::vector<uint8_t> raw(static_cast<size_t>(bytes));
  quant::quantize(t, v.data(), raw.data(), n * k);
  Tensor u8 = Tensor::from_vector<uint8_t>(h.context(), raw, {bytes});
  return Tensor(u8.buffer(), u8.offset(), {n, k}, {k, 1}, t);
}

// Decode-time linear: y [m, n] = x [m, k] W^T with W in its storage type and x in bf16. Shapes are reported
// as MxKxN; the bytes are W's storage plus x and y.
void gemv_case(Harness& h, DType wt, int64_t m, int64_t k, int64_t n) {
  Tensor x = random_tensor(h, {m, k}, DType::BF16, 1);
  Tensor w = is_quantized(wt) ? quantized_weight(h, wt, n, k) : random_tensor(h, {n, k}, wt, 2);
  Tensor y = Tensor::empty(h.context(), {m, n}, DType::BF16);
  // time_ms clears L2 before each run, so weights smaller than L2 come from memory, as in decoding.
  const double ms = h.time_ms([&] { linear(x, w, Tensor(), y); });
  const double bytes = static_cast<double>(storage_bytes(wt, n * k)) + 2.0 * (m * k + m * n);
  h.report("linear", std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n),
           std::string(name(wt)), ms, bytes, 2.0 * m * n * k);
}

// Prefill linear: y [m, n] = x [m, k] W^T with f32 x as the model runs it, so that quantized weights go
// through the f16 tile dequantization and dense f16 weights straight to the GEMM: the difference between
// the two rows is the cost of dequantizing W.
void prefill_case(Harness& h, DType wt, int64_t m, int64_t k, int64_t n) {
  Tensor x = random_tensor(h, {m, k}, DType::F32, 1);
  Tensor w = is_quantized(wt) ? quantized_weight(h, wt, n, k) : random_tensor(h, {n, k}, wt, 2);
  Tensor y = Tensor::empty(h.context(), {m, n}, DType::F32);
  const double ms = h.time_ms([&] { linear(x, w, Tensor(), y); });
  const double bytes = static_cast<double>(storage_bytes(wt, n * k)) + 4.0 * (m * k + m * n);
  h.report("linear", std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n),
           std::string(name(wt)), ms, bytes, 2.0 * m * n * k);
}

// The projections of a 7B decoder layer: up/gate (4096 -> 11008), down (11008 -> 4096), attention (4096^2).
void gemv_cases(Harness& h, DType wt) {
  gemv_case(h, wt, 1, 4096, 11008);
  gemv_case(h, wt, 1, 11008, 4096);
  gemv_case(h, wt, 1, 4096, 4096);
}

}  // namespace

METALLIC_BENCH(matmul_gemm_4096_bf16) {
  const int64_t n = 4096;
  Tensor a = random_tensor(h, {n, n}, DType::BF16, 1), b = random_tensor(h, {n, n}, DType::BF16, 2);
  Tensor c = Tensor::empty(h.context(), {n, n}, DType::BF16);
  const double ms = h.time_ms([&] { matmul(a, b, c); });
  h.report("matmul", "4096x4096x4096", "bf16", ms, 0, 2.0 * n * n * n);
}

METALLIC_BENCH(linear_gemv_bf16) {
  gemv_cases(h, DType::BF16);
  // 512 KiB of weights: the time is the fixed cost of a call after L2 is cleared (first loads from memory,
  // the reduction and the tail), which the rows above pay too.
  gemv_case(h, DType::BF16, 1, 4096, 64);
}
METALLIC_BENCH(linear_gemv_f16) { gemv_cases(h, DType::F16); }
METALLIC_BENCH(linear_gemv_q8_0) { gemv_cases(h, DType::Q8_0); }
METALLIC_BENCH(linear_gemv_q4_0) { gemv_cases(h, DType::Q4_0); }
// The grouped layouts CUDA models load Q8_0 / Q4_0 matrices in.
METALLIC_BENCH(linear_gemv_q8_0x8) { gemv_cases(h, DType::Q8_0X8); }
METALLIC_BENCH(linear_gemv_q4_0x8) { gemv_cases(h, DType::Q4_0X8); }
METALLIC_BENCH(linear_gemv_q4_k) { gemv_cases(h, DType::Q4_K); }
METALLIC_BENCH(linear_gemv_q6_k) { gemv_cases(h, DType::Q6_K); }
// Eight rows of x (batched decoding) share every weight load.
METALLIC_BENCH(linear_gemv_rows8) {
  gemv_case(h, DType::BF16, 8, 4096, 11008);
  gemv_case(h, DType::Q8_0, 8, 4096, 11008);
  gemv_case(h, DType::Q4_0, 8, 4096, 11008);
  gemv_case(h, DType::Q4_K, 8, 4096, 11008);
  gemv_case(h, DType::Q8_0X8, 8, 4096, 11008);
  gemv_case(h, DType::Q4_0X8, 8, 4096, 11008);
}
// Few output rows: the key/value projections of grouped-query attention in 8B- and 7B-class models.
METALLIC_BENCH(linear_gemv_narrow) {
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q8_0X8, DType::Q4_0X8}) {
    gemv_case(h, t, 1, 4096, 1024);
    gemv_case(h, t, 1, 3584, 512);
  }
}
// A 7B (Qwen2.5) MLP projection over a 512-token prompt.
METALLIC_BENCH(linear_prefill) {
  for (DType t :
       {DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K, DType::Q8_0X8, DType::Q4_0X8})
    prefill_case(h, t, 512, 3584, 18944);
}

// A prefill's gather of T token rows; T = 16384 moves as many bytes as the row ops' 16384 x 4096 cases.
METALLIC_BENCH(matmul_embedding_bf16) {
  const int64_t v = 32000, d = 4096;
  Tensor table = random_tensor(h, {v, d}, DType::BF16, 3);
  for (const int64_t t : {int64_t{4096}, int64_t{16384}}) {
    std::vector<int32_t> ids(static_cast<size_t>(t));
    for (int64_t i = 0; i < t; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919) % v);
    Tensor idt = Tensor::from_vector<int32_t>(h.context(), ids, {t});
    Tensor y = Tensor::empty(h.context(), {t, d}, DType::BF16);
    const double ms = h.time_ms([&] { embedding(table, idt, y); });
    h.report("embedding", "V32000xD4096xT" + std::to_string(t), "bf16", ms, 2.0 * 2.0 * t * d, 0);
  }
}

}  // namespace metallic::bench
