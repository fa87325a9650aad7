// Picking the next token from logits held by the host: the sample_token op's rules, with its own state.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>

#include "metallic/ops/sampling.h"

namespace metallic {

class Context;

/// Sampling settings of the generator (see SamplingOptions).
using SamplerOptions = SamplingOptions;

/// Stateful sampler over host logits: remembers recent tokens for the penalties and counts its draws, and
/// picks exactly what sample_token on any device picks for the same logits, window and draw number.
class Sampler {
 public:
  /// InvalidArgument for out-of-range settings.
  explicit Sampler(const SamplerOptions& options);
  /// Chooses a token from `logits` (one per vocabulary entry) and records it as recent; InvalidArgument
  /// when no logit is finite.
  int32_t sample(std::span<const float> logits);
  /// Records tokens that the penalties should see without sampling them (e.g. the prompt).
  void accept(int32_t token);
  const SamplerOptions& options() const { return options_; }

 private:
  SamplerOptions options_;
  std::shared_ptr<Context> host_;
  std::deque<int32_t> recent_;
  int64_t draws_ = 0;
};

/// Index of the largest logit, lowest index on ties; NaN never wins.
int32_t argmax(std::span<const float> logits);

}  // namespace metallic
