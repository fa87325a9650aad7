// Scaled dot-product attention with GQA, causal masking against a KV cache, and additive masks.
#pragma once

#include <cstdint>

#include "metallic/core/tensor.h"

namespace metallic {

/// Options of scaled_dot_product_attention.
struct AttentionOptions {
  float scale = 0.0f;   ///< multiplies q.k; 0 means 1/sqrt(head_dim)
  bool causal = false;  ///< query i sees keys j <= i + query_offset
  int64_t query_offset =
      0;        ///< absolute position of query 0 (0 is PyTorch's is_causal; Sk - Sq with a KV cache)
  Tensor mask;  ///< optional additive mask broadcastable to [B, Hq, Sq, Sk] (f32 or q's dtype)
  /// Optional i32 [B] on q's device: batch b sees only keys [0, key_lengths[b]) (values past Sk count as Sk).
  /// Read by the kernels, so a KV cache view of full capacity can serve a replayed graph as it fills.
  Tensor key_lengths;
};

/// softmax(scale * q k^T + mask) v for q [B, Hq, Sq, D], k and v [B, Hkv, Sk, D] with Hkv dividing Hq
/// (query head h reads kv head h / (Hq / Hkv)). Any strides with the last dimension dense, so the model's
/// seq-major [B, S, H, D] tensors are passed as permute({0, 2, 1, 3}) views. f32, f16, bf16; f32 softmax.
/// Result [B, Hq, Sq, D], contiguous. Rows with every key masked give zeros.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options = {});
/// Attention into `out` ([B, Hq, Sq, D] in q's dtype or f32, any strides with the last dimension dense).
void scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const AttentionOptions& options, const Tensor& out);

}  // namespace metallic
