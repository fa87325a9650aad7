// Text generation: prefill the prompt, then decode token by token with streaming and stop conditions.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "metallic/model/decode_step.h"
#include "metallic/model/kv_cache.h"
#include "metallic/model/model.h"
#include "metallic/model/sampler.h"
#include "metallic/model/tokenizer.h"

namespace metallic {

/// What to generate and when to stop.
struct GenerationOptions {
  int64_t max_tokens = 128;
  bool ignore_eos = false;                ///< keep going past end-of-sequence / end-of-turn tokens
  std::vector<int32_t> stop_tokens;       ///< extra ids that end generation (EOS and EOT are implied)
  std::vector<std::string> stop_strings;  ///< generation ends before the first occurrence of any
  SamplerOptions sampler;
};

/// Timings and counts of one generate() call.
struct GenerationStats {
  int64_t prompt_tokens = 0;  ///< tokens actually evaluated for the prompt (after cache reuse)
  int64_t generated_tokens = 0;
  double prompt_seconds = 0;
  double decode_seconds = 0;
  std::string stop_reason;  ///< "length", "eos" (an end or stop token), "stop string" or "callback"
};

/// Receives each piece of text as it becomes final; return false to stop.
using TextCallback = std::function<bool(std::string_view text)>;

/// A model, its tokenizer and one KV cache: a conversation that can be continued. Prompts sharing a prefix
/// with what the cache holds only evaluate the new suffix.
class Session {
 public:
  /// A session with a cache of `context` positions.
  Session(std::shared_ptr<const Model> model, std::shared_ptr<const Tokenizer> tokenizer, int64_t context);

  /// Evaluates `prompt` (the full token history to continue from), then samples up to max_tokens new
  /// tokens, streaming text through `on_text`. Returns the generated ids. Context overflow raises
  /// InvalidArgument before any work.
  std::vector<int32_t> generate(std::span<const int32_t> prompt, const GenerationOptions& options,
                                const TextCallback& on_text, GenerationStats* stats = nullptr);

  /// Tokens whose keys and values the cache holds, in order.
  const std::vector<int32_t>& history() const { return history_; }
  const KVCache& cache() const { return cache_; }
  const Model& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  /// Prompts are evaluated `batch` tokens per forward pass at most (default 512), bounding scratch memory.
  void set_batch(int64_t batch);

 private:
  // Evaluates `ids` after the cached history; logits of the last position, on the model's device.
  Tensor feed(std::span<const int32_t> ids);
  // The decode step for `options`, kept while they stay the same (its captured graph too).
  DecodeStep& step(const SamplerOptions& options);

  std::shared_ptr<const Model> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  KVCache cache_;
  std::vector<int32_t> history_;
  int64_t batch_ = 512;
  std::unique_ptr<DecodeStep> step_;
};

}  // namespace metallic
