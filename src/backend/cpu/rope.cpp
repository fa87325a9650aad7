// CPU reference RoPE: angles and rotations in double, one (token, head) row at a time.
#include "backend/rope.h"

#include <cmath>

#include "backend/cpu/rows.h"

namespace metallic::cpu {

void rope(const Tensor& x, const RopeOptions& options, const Tensor& out) {
  const int64_t d = x.dim(3), rot = options.rotary_dims, half = rot / 2;
  const std::vector<double> factors = values_or(options.freq_factors, half, 1.0);
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv_freq[static_cast<size_t>(i)] = std::pow(static_cast<double>(options.theta),
                                                -2.0 * static_cast<double>(i) / static_cast<double>(rot)) /
                                       factors[static_cast<size_t>(i)];
  const bool interleaved = options.style == RopeStyle::Interleaved;
  backend::visit_dense(x.dtype(), "rope", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data_as<T>();
    T* po = out.data_as<T>();
    const int64_t sx = x.stride(3), so = out.stride(3), seq = x.dim(1), heads = x.dim(2);
    std::vector<double> v(static_cast<size_t>(d));
    for_each_row<2>(x.shape(), {&x, &out}, [&](int64_t row, const auto& o) {
      const double pos = static_cast<double>(options.position_offset + (row / heads) % seq);
      for (int64_t j = 0; j < d; ++j) v[static_cast<size_t>(j)] = backend::load(px[o[0] + j * sx]);
      for (int64_t i = 0; i < half; ++i) {
        const int64_t a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
        const double angle = pos * inv_freq[static_cast<size_t>(i)];
        const double c = std::cos(angle), s = std::sin(angle);
        const double xa = v[static_cast<size_t>(a)], xb = v[static_cast<size_t>(b)];
        v[static_cast<size_t>(a)] = xa * c - xb * s;
        v[static_cast<size_t>(b)] = xa * s + xb * c;
      }
      for (int64_t j = 0; j < d; ++j) po[o[1] + j * so] = backend::store<T>(v[static_cast<size_t>(j)]);
    });
  });
}

}  // namespace metallic::cpu
