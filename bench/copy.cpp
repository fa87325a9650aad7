// Copy cases: dense copies of the bytes the 16384 x 4096 row ops and the embedding gather move, so that
// each op's fraction of copy can be read against a copy of its own size.
#include "metallic/ops/copy.h"

#include "bench.h"
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

}  // namespace
}  // namespace metallic::bench

METALLIC_BENCH(copy) {
  metallic::bench::copies(h, metallic::DType::BF16, 16384, 4096);
  metallic::bench::copies(h, metallic::DType::F32, 16384, 4096);
  metallic::bench::copies(h, metallic::DType::BF16, 4096, 4096);
}
