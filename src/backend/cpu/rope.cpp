// CPU reference RoPE: angles and rotations in double, one (token, head) row at a time.
#include "backend/rope.h"

#include <cmath>

#include "backend/cpu/rows.h"

namespace metallic::cpu {
namespace {

// theta^(-2i/rotary_dims) / freq_factors[i] for each pair i.
std::vector<double> inverse_frequencies(const RopeOptions& options) {
  const int64_t rot = options.rotary_dims, half = rot / 2;
  const std::vector<double> factors = values_or(options.freq_factors, half, 1.0);
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv_freq[static_cast<size_t>(i)] = std::pow(static_cast<double>(options.theta),
                                                -2.0 * static_cast<double>(i) / static_cast<double>(rot)) /
                                       factors[static_cast<size_t>(i)];
  return inv_freq;
}

// Rotates the pairs of row `v` (head_dim values) for position `pos`.
void rotate(std::vector<double>& v, double pos, const std::vector<double>& inv_freq, RopeStyle style) {
  const auto half = static_cast<int64_t>(inv_freq.size());
  for (int64_t i = 0; i < half; ++i) {
    const bool interleaved = style == RopeStyle::Interleaved;
    const auto a = static_cast<size_t>(interleaved ? 2 * i : i);
    const auto b = static_cast<size_t>(interleaved ? 2 * i + 1 : i + half);
    const double angle = pos * inv_freq[static_cast<size_t>(i)];
    const double c = std::cos(angle), s = std::sin(angle);
    const double xa = v[a], xb = v[b];
    v[a] = xa * c - xb * s;
    v[b] = xa * s + xb * c;
  }
}

// Reads `d` values at p (element stride `stride`) into v.
template <class T>
void read_row(const T* p, int64_t stride, std::vector<double>& v) {
  for (size_t j = 0; j < v.size(); ++j) v[j] = backend::load(p[static_cast<int64_t>(j) * stride]);
}

template <class T>
void write_row(T* p, int64_t stride, const std::vector<double>& v) {
  for (size_t j = 0; j < v.size(); ++j) p[static_cast<int64_t>(j) * stride] = backend::store<T>(v[j]);
}

}  // namespace

void rope(const Tensor& x, const RopeOptions& options, const Tensor& out) {
  const std::vector<double> inv_freq = inverse_frequencies(options);
  backend::visit_dense(x.dtype(), "rope", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data_as<T>();
    T* po = out.data_as<T>();
    const int64_t seq = x.dim(1), heads = x.dim(2);
    std::vector<double> v(static_cast<size_t>(x.dim(3)));
    for_each_row<2>(x.shape(), {&x, &out}, [&](int64_t row, const auto& o) {
      read_row(px + o[0], x.stride(3), v);
      rotate(v, static_cast<double>(options.position_offset + (row / heads) % seq), inv_freq, options.style);
      write_row(po + o[1], out.stride(3), v);
    });
  });
}

void rope_kv_write(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                   const RopeOptions& options, const Tensor& q_out, const Tensor& k_cache,
                   const Tensor& v_cache) {
  const std::vector<double> inv_freq = inverse_frequencies(options);
  const int32_t* pos = positions.data_as<int32_t>();
  const int64_t capacity = k_cache.dim(1);
  std::vector<double> row(static_cast<size_t>(q.dim(3)));
  backend::visit_dense(q.dtype(), "rope_kv_write", [&](auto tag) {
    using T = decltype(tag);
    backend::visit_dense(k_cache.dtype(), "rope_kv_write", [&](auto cache_tag) {
      using C = decltype(cache_tag);
      for (int64_t b = 0; b < q.dim(0); ++b) {
        for (int64_t s = 0; s < q.dim(1); ++s) {
          const auto p = static_cast<double>(pos[s]);
          for (int64_t h = 0; h < q.dim(2); ++h) {
            read_row(q.data_as<T>() + b * q.stride(0) + s * q.stride(1) + h * q.stride(2), 1, row);
            rotate(row, p, inv_freq, options.style);
            write_row(q_out.data_as<C>() + b * q_out.stride(0) + s * q_out.stride(1) + h * q_out.stride(2), 1,
                      row);
          }
          if (pos[s] < 0 || pos[s] >= capacity) continue;
          for (int64_t h = 0; h < k.dim(2); ++h) {
            const auto at = [&](const Tensor& c) {
              return c.data_as<C>() + b * c.stride(0) + pos[s] * c.stride(1) + h * c.stride(2);
            };
            read_row(k.data_as<T>() + b * k.stride(0) + s * k.stride(1) + h * k.stride(2), 1, row);
            rotate(row, p, inv_freq, options.style);
            write_row(at(k_cache), 1, row);
            read_row(v.data_as<T>() + b * v.stride(0) + s * v.stride(1) + h * v.stride(2), 1, row);
            write_row(at(v_cache), 1, row);
          }
        }
      }
    });
  });
}

}  // namespace metallic::cpu
