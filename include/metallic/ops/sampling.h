// Choosing the next token from a row of logits on the device that computed them.
#pragma once

#include <cstdint>

#include "metallic/core/tensor.h"

namespace metallic {

/// Sampling settings, in llama.cpp's spirit. temperature <= 0 means greedy (argmax, lowest id on ties).
struct SamplingOptions {
  float temperature = 0.8f;
  int top_k = 40;                  ///< keep the k most likely tokens (<= 0: all)
  float top_p = 0.95f;             ///< keep the smallest set whose probability reaches p (>= 1: all)
  float min_p = 0.05f;             ///< drop tokens below min_p times the top probability (<= 0: none)
  float repeat_penalty = 1.0f;     ///< divide positive / multiply negative logits of recent tokens (1: off)
  float presence_penalty = 0.0f;   ///< subtract from logits of tokens seen in the window
  float frequency_penalty = 0.0f;  ///< subtract count * this from logits of tokens seen in the window
  int penalty_window = 64;         ///< how many recent tokens the penalties look at
  uint64_t seed = 0;               ///< same seed and inputs give the same tokens, on every backend

  bool operator==(const SamplingOptions&) const = default;
};

/// InvalidArgument unless `options` are in range (finite temperature, top_p > 0, min_p < 1,
/// repeat_penalty > 0, penalty_window >= 0).
void validate(const SamplingOptions& options);

/// Picks one token from `logits` (f32 [V] or [1, V], dense) into `out` (i32 [1]). Order of work: penalties
/// for the ids in `recent` (i32 [W], entries < 0 ignored; may be undefined), then, unless greedy, top-k on
/// the logits, top-p and min-p on their probabilities at temperature 1, and a draw at `temperature` from
/// what is left. The draw is Gumbel-max with counter-based noise keyed by (seed, draw[0]) (`draw`: i64 [1]),
/// so both backends pick the same token and a replayed graph gets fresh noise when draw[0] changes. All
/// tensors on one device; nothing is read back to the host, so a CUDA call can be captured. When no logit is
/// finite, out is -1.
void sample_token(const Tensor& logits, const Tensor& recent, const Tensor& draw,
                  const SamplingOptions& options, const Tensor& out);

}  // namespace metallic
