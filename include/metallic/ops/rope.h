// Rotary position embeddings in both pairings.
#pragma once

#include <cstdint>

#include "metallic/core/tensor.h"

namespace metallic {

/// Which dimensions form a rotated pair.
enum class RopeStyle {
  Interleaved,  ///< (2i, 2i+1): GGUF arch "llama", rope type NORM
  Neox,         ///< (i, i + rotary_dims/2): split halves, Qwen2 and Hugging Face's rotate_half
};

/// RoPE parameters. Pair i of a token at position p rotates by p * theta^(-2i/rotary_dims) / freq_factors[i].
struct RopeOptions {
  RopeStyle style = RopeStyle::Interleaved;
  float theta = 10000.0f;
  int64_t position_offset = 0;  ///< position of sequence index 0
  int64_t rotary_dims = 0;      ///< leading dimensions rotated (0: all of head_dim); the rest pass through
  Tensor freq_factors;          ///< optional f32 [rotary_dims/2] divisors (Llama 3 rope_freqs)
};

/// Rotates x [batch, seq, heads, head_dim] (f32/f16/bf16, any strides) at positions position_offset + s.
Tensor rope(const Tensor& x, const RopeOptions& options);
/// rope into `out` (x's shape and dtype; may be x itself for in-place).
void rope(const Tensor& x, const RopeOptions& options, const Tensor& out);

/// RoPE fused with the KV-cache append: writes rope(q) to q_out, rope(k[b, s]) to k_cache[b, positions[s]]
/// and v[b, s] to v_cache[b, positions[s]]. q [B, S, Hq, D], k and v [B, S, Hkv, D] of one float dtype;
/// caches [B, capacity, Hkv, D] and q_out (q's shape; may be q itself when the dtypes agree) of one float
/// dtype, so attention reads all three in one type; last dimensions dense. positions: i32 [S] on the same
/// device, also the rotation positions (options.position_offset is not used). The kernels read positions
/// from memory, so a replayed graph can move them; a position outside [0, capacity) writes nothing.
void rope_kv_write(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                   const RopeOptions& options, const Tensor& q_out, const Tensor& k_cache,
                   const Tensor& v_cache);

}  // namespace metallic
