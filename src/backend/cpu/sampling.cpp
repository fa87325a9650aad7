// CPU reference sampling: the penalties, a sort of the candidates, the truncations on probabilities in
// double, and the Gumbel-max draw, written out step by step.
#include "backend/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <vector>

namespace metallic::cpu {

void sample_token(const Tensor& logits, const Tensor& recent, const Tensor& draw, const SamplingOptions& o,
                  const Tensor& out) {
  const auto v = static_cast<int32_t>(logits.numel());
  const float* in = logits.data_as<float>();
  std::vector<float> z(in, in + v);
  if (recent.defined() && (o.repeat_penalty != 1.0f || o.presence_penalty != 0 || o.frequency_penalty != 0)) {
    std::map<int32_t, int> counts;
    const int32_t* r = recent.data_as<int32_t>();
    for (int64_t i = 0; i < recent.numel(); ++i)
      if (r[i] >= 0 && r[i] < v) ++counts[r[i]];
    for (const auto& [t, count] : counts)
      z[static_cast<size_t>(t)] =
          backend::penalize(in[t], count, o.repeat_penalty, o.presence_penalty, o.frequency_penalty);
  }
  // NaN never wins; with nothing finite to choose from the result is -1.
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (float& x : z)
    if (std::isnan(x)) x = neg_inf;
  int32_t chosen = -1;
  if (o.temperature <= 0) {
    const auto best = std::max_element(z.begin(), z.end());  // first of equal maxima: the lowest id
    if (*best != neg_inf) chosen = static_cast<int32_t>(best - z.begin());
  } else {
    std::vector<int32_t> ids(static_cast<size_t>(v));
    std::iota(ids.begin(), ids.end(), 0);
    const auto k = static_cast<size_t>(o.top_k > 0 ? std::min(o.top_k, v) : v);
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
                      [&](int32_t a, int32_t b) {
                        const float za = z[static_cast<size_t>(a)], zb = z[static_cast<size_t>(b)];
                        return za > zb || (za == zb && a < b);
                      });
    const float top = z[static_cast<size_t>(ids[0])];
    if (std::isfinite(top)) {
      // Probabilities at temperature 1 decide the truncation (as llama.cpp's default order does).
      std::vector<double> p(k);
      double sum = 0;
      for (size_t i = 0; i < k; ++i)
        sum += p[i] = std::exp(static_cast<double>(z[static_cast<size_t>(ids[i])] - top));
      size_t keep = k;
      if (o.top_p < 1) {
        double cum = 0;
        for (size_t i = 0; i < k; ++i) {
          cum += p[i];
          if (cum / sum >= o.top_p) {
            keep = i + 1;
            break;
          }
        }
      }
      if (o.min_p > 0)
        keep = std::min(keep, static_cast<size_t>(std::find_if(p.begin() + 1, p.end(),
                                                               [&](double x) { return x < o.min_p; }) -
                                                  p.begin()));
      const int64_t stream = *draw.data_as<int64_t>();
      double best = -std::numeric_limits<double>::infinity();
      for (size_t i = 0; i < keep; ++i) {
        const int32_t id = ids[i];
        const double s =
            backend::gumbel_score(z[static_cast<size_t>(id)], top, o.temperature, o.seed, stream, id);
        if (chosen < 0 || s > best) {
          best = s;
          chosen = id;
        }
      }
    }
  }
  *out.data_as<int32_t>() = chosen;
}

}  // namespace metallic::cpu
