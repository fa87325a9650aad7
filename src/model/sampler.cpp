#include "metallic/model/sampler.h"

#include <cmath>
#include <vector>

#include "metallic/core/buffer.h"
#include "metallic/core/context.h"
#include "metallic/core/error.h"
#include "metallic/core/tensor.h"

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

Sampler::Sampler(const SamplerOptions& options) : options_(options), host_(Context::create(Device::cpu())) {
  validate(options_);
}

void Sampler::accept(int32_t token) {
  if (options_.penalty_window == 0) return;
  recent_.push_back(token);
  while (static_cast<int>(recent_.size()) > options_.penalty_window) recent_.pop_front();
}

int32_t Sampler::sample(std::span<const float> logits) {
  check(!logits.empty(), ErrorCode::InvalidArgument, "sampler: no logits");
  const auto n = static_cast<int64_t>(logits.size());
  const Tensor z(Buffer::wrap(host_, const_cast<float*>(logits.data()), logits.size_bytes(), nullptr), 0, {n},
                 {1}, DType::F32);
  const std::vector<int32_t> window(recent_.begin(), recent_.end());
  const Tensor recent =
      window.empty() ? Tensor()
                     : Tensor::from_vector<int32_t>(host_, window, {static_cast<int64_t>(window.size())});
  const Tensor draw = Tensor::from_vector<int64_t>(host_, std::vector<int64_t>{draws_++}, {1});
  const Tensor out = Tensor::empty(host_, {1}, DType::I32);
  sample_token(z, recent, draw, options_, out);
  const int32_t chosen = *out.data_as<int32_t>();
  check(chosen >= 0, ErrorCode::InvalidArgument, "sampler: no finite logit to sample from");
  accept(chosen);
  return chosen;
}

}  // namespace metallic
