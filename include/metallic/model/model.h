// A decoder-only transformer (Llama and Qwen2 families) loaded from GGUF, and its forward pass.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "metallic/core/tensor.h"
#include "metallic/model/config.h"
#include "metallic/model/gguf.h"
#include "metallic/model/kv_cache.h"

namespace metallic {

/// Called while weights load with the bytes done so far and the total.
using LoadProgress = std::function<void(int64_t done, int64_t total)>;

/// Weights of one transformer block. Where the types agree (on a GPU), q, k and v are stacked into wqkv
/// (bias bqkv) and gate and up into w_gate_up, and the separate tensors stay undefined.
struct LayerWeights {
  Tensor attn_norm, wq, wk, wv, wqkv, wo, bq, bk, bv, bqkv;
  Tensor ffn_norm, w_gate, w_up, w_gate_up, w_down;
};

/// A loaded model: configuration, weights on one device, and the forward pass. Weights keep their GGUF
/// type (quantized ones stay quantized in device memory; the matmul kernels dequantize them).
class Model {
 public:
  /// Loads the GGUF file at `path` onto `context`'s device.
  static std::shared_ptr<Model> load(const std::string& path, const std::shared_ptr<Context>& context,
                                     const LoadProgress& progress = {});
  /// Loads an already parsed file (kept alive by the model).
  static std::shared_ptr<Model> load(std::shared_ptr<const gguf::File> file,
                                     const std::shared_ptr<Context>& context,
                                     const LoadProgress& progress = {});

  const ModelConfig& config() const { return config_; }
  /// The parsed file (metadata for the tokenizer and chat template).
  const gguf::File& file() const { return *file_; }
  const std::shared_ptr<Context>& context() const { return context_; }
  /// Bytes of weights on the device.
  int64_t weight_bytes() const { return weight_bytes_; }
  /// Bytes of weights one decode step reads: all of them except the embedding table, of which only one row is
  /// touched (unless it doubles as the output projection).
  int64_t decode_weight_bytes() const;
  /// Number of weight elements.
  int64_t parameter_count() const { return parameters_; }
  /// A KV cache for `capacity` positions in this model's shape (f16 on CUDA, f32 on the CPU by default).
  KVCache make_cache(int64_t capacity) const;
  KVCache make_cache(int64_t capacity, DType dtype) const;

  /// Runs `ids` at positions cache.size() ... and appends them to `cache`. Returns f32 logits
  /// [ids.size(), n_vocab] when `all_logits`, else [1, n_vocab] for the last position only.
  /// Ids outside the vocabulary and context overflow raise InvalidArgument.
  Tensor forward(std::span<const int32_t> ids, KVCache& cache, bool all_logits = false) const;
  /// forward() over `ids` in passes of at most `batch` tokens (bounding scratch memory); returns the last
  /// position's logits [1, n_vocab]. A non-positive batch raises InvalidArgument.
  Tensor prefill(std::span<const int32_t> ids, KVCache& cache, int64_t batch) const;

  /// Whether decode() can run from device memory alone: the embedding op gathers from this model's table.
  bool decodes_on_device() const;
  /// One token whose id (i32 [1]), position (i32 [1]) and key count (i32 [1], position + 1) are read from
  /// device memory, writing f32 logits [1, n_vocab] into `logits` and its keys and values into `cache` at
  /// that position. Nothing is allocated outside the context's pool and nothing is read back, so the call
  /// can be captured into a graph and replayed with new inputs. It does not advance the cache; the caller
  /// checks the position against the capacity (an id outside the vocabulary embeds as zeros on CUDA).
  void decode(const Tensor& token, const Tensor& position, const Tensor& key_length, const KVCache& cache,
              const Tensor& logits) const;

 private:
  // Where a forward pass's tokens sit: positions i32 [n] on the device, and either the host position of
  // the first token (start >= 0: attention reads the filled prefix of the cache, causally) or a device key
  // count (one token reading the first key_length[0] cache positions).
  struct Placement {
    Tensor positions;
    int64_t start = -1;
    Tensor key_length;
  };

  Model() = default;
  Tensor embed(std::span<const int32_t> ids) const;
  // The dtype of the activations that feed the matrix products for `tokens` tokens.
  DType activation_dtype(int64_t tokens) const;
  // The transformer over embedded tokens `x` (f32 [n, n_embd], overwritten as the residual stream), logits
  // of every position or the last one into `logits`.
  void run(const Tensor& x, const Placement& placement, const KVCache& cache, const Tensor& logits) const;

  std::shared_ptr<const gguf::File> file_;
  std::shared_ptr<Context> context_;
  ModelConfig config_;
  Tensor token_embd_, output_norm_, output_, rope_freqs_;
  std::vector<LayerWeights> layers_;
  int64_t weight_bytes_ = 0, parameters_ = 0;
};

}  // namespace metallic
