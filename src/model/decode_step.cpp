#include "metallic/model/decode_step.h"

#include <algorithm>
#include <cstring>

#include "metallic/core/context.h"
#include "metallic/core/error.h"
#include "metallic/core/resource_cache.h"

namespace metallic {
namespace {

bool penalties_active(const SamplingOptions& o) {
  return o.repeat_penalty != 1.0f || o.presence_penalty != 0 || o.frequency_penalty != 0;
}

constexpr int64_t kFixedWords = 5;  // draw (two words), token, position, key count

}  // namespace

DecodeStep::DecodeStep(std::shared_ptr<const Model> model, const SamplingOptions& options)
    : model_(std::move(model)), options_(options), graph_(model_->context()) {
  validate(options_);
  window_ = penalties_active(options_) ? options_.penalty_window : 0;
  const std::shared_ptr<Context>& ctx = model_->context();
  inputs_ = Tensor::empty(ctx, {kFixedWords + window_}, DType::I32);
  const auto view = [&](int64_t word, int64_t count, DType dtype) {
    return Tensor(inputs_.buffer(), word * 4, {count}, {1}, dtype);
  };
  draw_ = view(0, 1, DType::I64);
  token_ = view(2, 1, DType::I32);
  position_ = view(3, 1, DType::I32);
  key_length_ = view(4, 1, DType::I32);
  if (window_ > 0) recent_ = view(kFixedWords, window_, DType::I32);
  staging_.assign(static_cast<size_t>(kFixedWords + window_), -1);
  logits_ = Tensor::empty(ctx, {1, model_->config().n_vocab}, DType::F32);
  next_ = Tensor::empty(ctx, {1}, DType::I32);
}

void DecodeStep::stage(int32_t token, int64_t position, std::span<const int32_t> recent) {
  const int64_t draw = draws_++;
  std::memcpy(staging_.data(), &draw, sizeof(draw));
  staging_[2] = token;
  staging_[3] = static_cast<int32_t>(position);
  staging_[4] = static_cast<int32_t>(position + 1);
  const size_t take = std::min(recent.size(), static_cast<size_t>(window_));
  std::fill(staging_.begin() + kFixedWords, staging_.end(), -1);
  std::copy(recent.end() - static_cast<std::ptrdiff_t>(take), recent.end(), staging_.begin() + kFixedWords);
  inputs_.assign<int32_t>(staging_);
}

int32_t DecodeStep::read_token() {
  const int32_t token = next_.to_vector<int32_t>()[0];
  check(token >= 0, ErrorCode::InvalidArgument, "sampler: no finite logit to sample from");
  return token;
}

int32_t DecodeStep::sample(const Tensor& logits, std::span<const int32_t> recent) {
  stage(0, 0, recent);
  sample_token(logits, recent_, draw_, options_, next_);
  return read_token();
}

void DecodeStep::record_step(const KVCache& cache) {
  graph_.clear();
  graph_.record("decode", [this, &cache] { model_->decode(token_, position_, key_length_, cache, logits_); });
  graph_.record("sample", [this] { sample_token(logits_, recent_, draw_, options_, next_); });
}

int32_t DecodeStep::next(int32_t token, std::span<const int32_t> recent, KVCache& cache) {
  check(token >= 0 && token < model_->config().n_vocab, ErrorCode::InvalidArgument, "decode: token id ",
        token, " outside the vocabulary of ", model_->config().n_vocab);
  cache.reserve(1);
  stage(token, cache.size(), recent);
  const std::shared_ptr<Context>& ctx = model_->context();
  if (!ctx->device().is_cuda() || !model_->decodes_on_device()) {
    const Tensor logits = model_->forward(std::span<const int32_t>(&token, 1), cache);
    sample_token(logits, recent_, draw_, options_, next_);
    return read_token();
  }
  // The graph bakes in the cache's tensors and the pool addresses above the mark it was captured at.
  MemoryPool& pool = ctx->pool();
  const MemoryPool::Mark mark = pool.mark();
  const bool same_place = graph_cache_ == cache.storage_id() && graph_mark_.chunk == mark.chunk &&
                          graph_mark_.offset == mark.offset;
  if (graph_.captured() && !same_place) eager_runs_ = 0;
  if (!graph_.captured() || !same_place) {
    record_step(cache);
    if (eager_runs_++ == 0) {
      graph_.commit();  // a first eager run sizes the pool and fills the caches the kernels keep
    } else {
      graph_mark_ = mark;
      graph_cache_ = cache.storage_id();
      graph_.capture();
      graph_resources_ = ctx->cache().values();
      graph_.commit();
    }
  } else {
    graph_.commit();
  }
  cache.advance(1);
  return read_token();
}

}  // namespace metallic
