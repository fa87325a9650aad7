#include "metallic/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "metallic/core/error.h"

namespace metallic {

int32_t argmax(std::span<const float> logits) {
  check(!logits.empty(), ErrorCode::InvalidArgument, "argmax: no logits");
  int32_t best = -1;
  for (size_t i = 0; i < logits.size(); ++i)
    if (!std::isnan(logits[i]) && (best < 0 || logits[i] > logits[static_cast<size_t>(best)]))
      best = static_cast<int32_t>(i);
  check(best >= 0, ErrorCode::InvalidArgument, "argmax: every logit is NaN");
  return best;
}

Sampler::Sampler(const SamplerOptions& options) : options_(options), rng_(options.seed) {
  check(std::isfinite(options.temperature) && options.top_p > 0 && options.min_p < 1 &&
            options.repeat_penalty > 0 && options.penalty_window >= 0,
        ErrorCode::InvalidArgument, "sampler: invalid settings (temperature ", options.temperature,
        ", top_p ", options.top_p, ", min_p ", options.min_p, ", repeat_penalty ", options.repeat_penalty,
        ", window ", options.penalty_window, ")");
}

void Sampler::accept(int32_t token) {
  if (options_.penalty_window == 0) return;
  recent_.push_back(token);
  while (static_cast<int>(recent_.size()) > options_.penalty_window) recent_.pop_front();
}

int32_t Sampler::sample(std::span<const float> logits) {
  check(!logits.empty(), ErrorCode::InvalidArgument, "sampler: no logits");
  scratch_.assign(logits.begin(), logits.end());
  std::vector<float>& z = scratch_;
  const SamplerOptions& o = options_;
  if (!recent_.empty() && (o.repeat_penalty != 1.0f || o.presence_penalty != 0 || o.frequency_penalty != 0)) {
    std::unordered_map<int32_t, int> counts;
    for (int32_t t : recent_) ++counts[t];
    for (const auto& [t, count] : counts) {
      if (t < 0 || static_cast<size_t>(t) >= z.size()) continue;
      float& v = z[static_cast<size_t>(t)];
      v = v > 0 ? v / o.repeat_penalty : v * o.repeat_penalty;
      v -= o.presence_penalty + static_cast<float>(count) * o.frequency_penalty;
    }
  }
  int32_t chosen;
  if (o.temperature <= 0) {
    chosen = argmax(z);
  } else {
    // Candidates sorted by logit (ties: lower id first), then truncated.
    std::vector<int32_t> ids(z.size());
    std::iota(ids.begin(), ids.end(), 0);
    for (float& v : z)
      if (std::isnan(v)) v = -INFINITY;
    const size_t k = o.top_k > 0 ? std::min<size_t>(static_cast<size_t>(o.top_k), ids.size()) : ids.size();
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
                      [&](int32_t a, int32_t b) {
                        return z[static_cast<size_t>(a)] > z[static_cast<size_t>(b)] ||
                               (z[static_cast<size_t>(a)] == z[static_cast<size_t>(b)] && a < b);
                      });
    ids.resize(k);
    check(std::isfinite(z[static_cast<size_t>(ids[0])]), ErrorCode::InvalidArgument,
          "sampler: no finite logit to sample from");
    // Probabilities at temperature 1 decide the truncation (as llama.cpp's default order does).
    const float top = z[static_cast<size_t>(ids[0])];
    std::vector<double> p(k);
    double sum = 0;
    for (size_t i = 0; i < k; ++i)
      sum += p[i] = std::exp(static_cast<double>(z[static_cast<size_t>(ids[i])] - top));
    size_t keep = k;
    if (o.top_p < 1) {
      double cum = 0;
      for (size_t i = 0; i < k; ++i) {
        cum += p[i] / sum;
        if (cum >= o.top_p) {
          keep = i + 1;
          break;
        }
      }
    }
    if (o.min_p > 0) {
      size_t n = 1;
      while (n < keep && p[n] >= o.min_p * p[0]) ++n;
      keep = n;
    }
    std::vector<double> weights(keep);
    for (size_t i = 0; i < keep; ++i)
      weights[i] = std::exp(static_cast<double>(z[static_cast<size_t>(ids[i])] - top) / o.temperature);
    std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
    chosen = ids[pick(rng_)];
  }
  accept(chosen);
  return chosen;
}

}  // namespace metallic
