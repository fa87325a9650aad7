// CPU reference softmax and log-softmax: one row at a time, in double.
#include "backend/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/cpu/rows.h"

namespace metallic::cpu {

using backend::load;

void softmax(const Tensor& x, const SoftmaxOptions& options, bool log, const Tensor& out) {
  const int64_t h = x.dim(-1);
  const int64_t sq = x.rank() >= 2 ? x.dim(-2) : 1;
  const double inf = std::numeric_limits<double>::infinity();
  backend::visit_dense(x.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data_as<T>();
    T* po = out.data_as<T>();
    const int64_t sx = x.stride(-1), so = out.stride(-1);
    std::vector<double> v(static_cast<size_t>(h));
    for_each_row<2>(x.shape(), {&x, &out}, [&](int64_t row, const auto& o) {
      // Columns [0, kept) survive the mask: j <= i + query_offset.
      const int64_t kept =
          options.causal ? std::clamp<int64_t>(row % sq + options.query_offset + 1, 0, h) : h;
      double max = -inf;
      for (int64_t j = 0; j < kept; ++j) {
        const double e = static_cast<double>(options.scale) * load(px[o[0] + j * sx]);
        v[static_cast<size_t>(j)] = e;
        if (e > max) max = e;  // NaN never wins, but poisons the sum below
      }
      double sum = 0;
      for (int64_t j = 0; j < kept; ++j) sum += std::exp(v[static_cast<size_t>(j)] - max);
      for (int64_t j = 0; j < h; ++j) {
        const double e = v[static_cast<size_t>(j)];
        double r;
        if (j >= kept)
          r = log ? -inf : 0.0;
        else
          r = log ? e - max - std::log(sum) : std::exp(e - max) / sum;
        po[o[1] + j * so] = backend::store<T>(r);
      }
    });
  });
}

}  // namespace metallic::cpu
