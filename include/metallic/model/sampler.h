// Picking the next token from logits: penalties, truncation (top-k, top-p, min-p), temperature, seeded draw.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace metallic {

/// Sampling settings, in llama.cpp's spirit. temperature <= 0 means greedy (argmax, lowest id on ties).
struct SamplerOptions {
  float temperature = 0.8f;
  int top_k = 40;                  ///< keep the k most likely tokens (<= 0: all)
  float top_p = 0.95f;             ///< keep the smallest set whose probability reaches p (>= 1: all)
  float min_p = 0.05f;             ///< drop tokens below min_p times the top probability (<= 0: none)
  float repeat_penalty = 1.0f;     ///< divide positive / multiply negative logits of recent tokens (1: off)
  float presence_penalty = 0.0f;   ///< subtract from logits of tokens seen in the window
  float frequency_penalty = 0.0f;  ///< subtract count * this from logits of tokens seen in the window
  int penalty_window = 64;         ///< how many recent tokens the penalties look at
  uint64_t seed = 0;               ///< same seed and inputs give the same tokens
};

/// Stateful sampler: remembers recent tokens for the penalties and owns the random generator.
class Sampler {
 public:
  /// InvalidArgument for out-of-range settings (negative temperature penalties are allowed).
  explicit Sampler(const SamplerOptions& options);
  /// Chooses a token from `logits` (one per vocabulary entry) and records it as recent.
  int32_t sample(std::span<const float> logits);
  /// Records tokens that the penalties should see without sampling them (e.g. the prompt).
  void accept(int32_t token);
  const SamplerOptions& options() const { return options_; }

 private:
  SamplerOptions options_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;
  std::vector<float> scratch_;
};

/// Index of the largest logit, lowest index on ties; NaN never wins.
int32_t argmax(std::span<const float> logits);

}  // namespace metallic
