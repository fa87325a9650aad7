// Models with random weights in the exact tensor shapes of real architectures, for speed measurements
// without downloads (and the small built-in model).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "metallic/model/gguf.h"

namespace metallic {

/// Shape of a synthetic model.
struct SyntheticSpec {
  std::string name;
  std::string architecture = "llama";  ///< "llama" or "qwen2" (q/k/v biases, NEOX rope)
  int64_t layers = 0, embd = 0, heads = 0, kv_heads = 0, ff = 0, vocab = 0, context = 4096;
  float rope_theta = 10000.0f;
  bool tied = false;  ///< output projection shares token_embd.weight

  /// A named preset: "builtin", "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b", "llama3-8b";
  /// InvalidArgument for other names.
  static SyntheticSpec preset(std::string_view name);
  /// The preset names.
  static std::vector<std::string> presets();
};

/// Chooses the stored type of each matrix from its tensor name (norms and biases are always f32).
using WeightTypeFn = std::function<DType(const std::string& tensor)>;

/// One type for every matrix; rows that do not hold whole blocks of it (e.g. Q4_K rows of 896) fall back to
/// Q8_0, as llama.cpp's quantizer falls back for such rows.
WeightTypeFn uniform_weight_type(DType dtype);

/// Adds metadata (hyperparameters and a placeholder SentencePiece vocabulary of byte tokens) and random
/// tensors (uniform with standard deviation 0.02, quantized on the CPU; produced lazily while writing) to
/// `writer`.
void add_synthetic_model(gguf::Writer& writer, const SyntheticSpec& spec, const WeightTypeFn& type_of,
                         uint64_t seed);

/// A small synthetic model parsed from memory (the built-in model when `spec` is the "builtin" preset).
std::shared_ptr<const gguf::File> synthetic_model(const SyntheticSpec& spec, const WeightTypeFn& type_of,
                                                  uint64_t seed);

}  // namespace metallic
