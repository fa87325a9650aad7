// The per-token decode step on the device: forward one token, sample the next, read back four bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "metallic/core/memory_pool.h"
#include "metallic/core/tensor.h"
#include "metallic/graph/command_buffer.h"
#include "metallic/model/kv_cache.h"
#include "metallic/model/model.h"
#include "metallic/ops/sampling.h"

namespace metallic {

/// Decoding with every per-token input (token, position, penalty window, draw counter) staged in one device
/// buffer. On CUDA the step (forward and sampling) runs eagerly once, is captured into a CUDA graph on the
/// next call, and is replayed from then on: a token costs one small upload, one graph launch and a 4-byte
/// read. Logits never travel to the host.
class DecodeStep {
 public:
  /// A step for `model` sampling with `options`; InvalidArgument for bad options.
  DecodeStep(std::shared_ptr<const Model> model, const SamplingOptions& options);

  /// Samples from `logits` (f32 [1, n_vocab] on the model's device, e.g. a prompt's last position) with the
  /// penalties seeing `recent` (the history, oldest first; the last penalty_window ids count).
  int32_t sample(const Tensor& logits, std::span<const int32_t> recent);
  /// Evaluates `token` at position cache.size(), appends it to `cache` and samples the next token.
  /// InvalidArgument on context overflow or an id outside the vocabulary, before any work.
  int32_t next(int32_t token, std::span<const int32_t> recent, KVCache& cache);

  const SamplingOptions& options() const { return options_; }
  /// Whether next() replays a captured graph.
  bool captured() const { return graph_.captured(); }

 private:
  // Writes the per-token inputs into the staging buffer and uploads it.
  void stage(int32_t token, int64_t position, std::span<const int32_t> recent);
  // Queues the forward pass and the sampler (what the graph holds).
  void record_step(const KVCache& cache);
  int32_t read_token();

  std::shared_ptr<const Model> model_;
  SamplingOptions options_;
  int64_t window_;  // penalty window slots (0 when no penalty is active)
  int64_t draws_ = 0;
  // Device inputs, views of one buffer: draw i64 [1], then i32 token, position, key count, recent[window_].
  Tensor inputs_, draw_, token_, position_, key_length_, recent_;
  std::vector<int32_t> staging_;
  Tensor logits_, next_;
  CommandBuffer graph_;
  uint64_t graph_cache_ = 0;  // storage_id() of the cache the graph writes
  MemoryPool::Mark graph_mark_{};
  std::vector<std::shared_ptr<void>> graph_resources_;  // cached objects (plans, counters) the graph uses
  int eager_runs_ = 0;
};

}  // namespace metallic
