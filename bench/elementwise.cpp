// Elementwise cases: dense copies of the bytes the 16384 x 4096 row ops and the embedding gather move (so
// that each op's fraction of copy can be read against a copy of its own size), and a + b on 16384 x 4096.
#include "metallic/ops/elementwise.h"

#include "bench.h"
#include "metallic/ops/copy.h"
#include "metallic/ops/creation.h"

namespace metallic::bench {
namespace {

void copies(Harness& h, DType dtype, int64_t rows, int64_t cols) {
  const auto& ctx = h.context();
  const Tensor x = normal(ctx, {rows, cols}, 1, 0, 1, dtype);
  const Tensor out = Tensor::empty(ctx, {rows, cols}, dtype);
  h.report("copy", std::to_string(rows) + "x" + std::to_string(cols), std::string(name(dtype)),
           h.time_ms([&] { copy(x, out); }), 2.0 * static_cast<double>(x.nbytes()), 0);
}

void adds(Harness& h, DType dtype) {
  const auto& ctx = h.context();
  const int64_t rows = 16384, cols = 4096;
  const Tensor a = normal(ctx, {rows, cols}, 1, 0, 1, dtype), b = normal(ctx, {rows, cols}, 2, 0, 1, dtype);
  const Tensor out = Tensor::empty(ctx, {rows, cols}, dtype);
  h.report("add", std::to_string(rows) + "x" + std::to_string(cols), std::string(name(dtype)),
           h.time_ms([&] { binary(BinaryOp::Add, a, b, out); }), 3.0 * static_cast<double>(a.nbytes()), 0);
}

}  // namespace
}  // namespace metallic::bench

METALLIC_BENCH(copy) {
  metallic::bench::copies(h, metallic::DType::BF16, 16384, 4096);
  metallic::bench::copies(h, metallic::DType::F32, 16384, 4096);
  metallic::bench::copies(h, metallic::DType::BF16, 4096, 4096);
}
METALLIC_BENCH(add) {
  metallic::bench::adds(h, metallic::DType::BF16);
  metallic::bench::adds(h, metallic::DType::F32);
}
