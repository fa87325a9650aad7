// Hyperparameters of a decoder-only transformer, read from GGUF metadata.
#pragma once

#include <cstdint>
#include <string>

#include "metallic/model/gguf.h"
#include "metallic/ops/rope.h"

namespace metallic {

/// The architecture families the engine runs.
enum class Architecture { Llama, Qwen2 };

/// Everything the forward pass needs to know about a model's shape.
struct ModelConfig {
  Architecture architecture = Architecture::Llama;
  std::string name;  ///< general.name, or the architecture
  int64_t n_layers = 0;
  int64_t n_embd = 0;  ///< hidden size
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t n_ff = 0;  ///< feed-forward inner size
  int64_t n_vocab = 0;
  int64_t context_length = 0;  ///< trained context
  float rms_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeStyle rope_style = RopeStyle::Interleaved;
  int64_t rope_dims = 0;  ///< rotated dimensions per head
  bool qkv_bias = false;  ///< Qwen2 carries q/k/v biases

  /// Reads `{arch}.*` keys; unsupported architectures raise NotSupported, missing or inconsistent
  /// values raise Format naming the key.
  static ModelConfig from_gguf(const gguf::File& file);
};

/// "llama" or "qwen2".
const char* to_string(Architecture architecture);

}  // namespace metallic
