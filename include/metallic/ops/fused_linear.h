// linear() with the transformer's neighbouring steps folded in: the RMSNorm that precedes a projection, and
// the residual add or the SwiGLU gate that follows it. A decode step then runs one kernel where it ran two
// or three, which is most of its cost for small models.
#pragma once

#include "metallic/core/tensor.h"
#include "metallic/ops/rope.h"

namespace metallic {

/// What fused_linear does with the product y = x' W^T + b.
enum class LinearEpilogue {
  Store,       ///< out = y
  Accumulate,  ///< out += y (the residual update)
  SwiGLU,  ///< out [..., N/2] = silu(y[..., :N/2]) * y[..., N/2:]: W holds the gate rows, then the up rows
};

/// The steps fused around the product.
struct FusedLinearOptions {
  bool rms_norm = false;  ///< x' = rms_norm(x, norm_weight, eps) over K; otherwise x' = x
  Tensor norm_weight;     ///< [K] in f32 or x's dtype, or undefined (ones)
  float eps = 1e-6f;      ///< the norm's epsilon
  LinearEpilogue epilogue = LinearEpilogue::Store;
  /// weight, bias and norm_weight are not written by the op just before this one on the stream (a model's
  /// parameters): their loads may then start while that op finishes. Otherwise every read waits for it.
  bool static_weights = false;
};

/// out = epilogue(x' @ weight^T + bias). x [..., K] (K > 0) in f32, f16 or bf16; weight [N, K] and bias as
/// for linear(); out [..., N] ([..., N/2] for SwiGLU, N even) in x's dtype, on x's device, not overlapping x.
/// x', y and the gate are kept in f32 and out is rounded once, except where fused_linear_single_pass() is
/// false: the separate ops then round x' and y to x's dtype.
void fused_linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const FusedLinearOptions& options, const Tensor& out);

/// True when fused_linear makes a single pass over `weight` for `rows` rows of x, its norm and epilogue
/// folded in (on CUDA one kernel, or for block-quantized weights a short kernel rounding x' to 8 bits and
/// then the product). Otherwise it runs the separate ops, and a caller holding a fusion of its own for the
/// neighbouring steps (add_rms_norm) runs fewer kernels with that.
bool fused_linear_single_pass(const Tensor& weight, int64_t rows);

/// Where fused_linear_rope_kv sends the three parts of its product (as rope_kv_write takes them).
struct RopeKvTargets {
  Tensor positions;  ///< i32 [S]: each token's rotation position and cache row
  RopeOptions rope;  ///< the rotation (position_offset is not used)
  Tensor q_out;      ///< [B, S, Hq, D]: rotated q
  Tensor k_cache;    ///< [B, capacity, Hkv, D]: rotated k lands in row positions[s]
  Tensor v_cache;    ///< [B, capacity, Hkv, D]: v lands in row positions[s]
};

/// Attention's input projection with what follows it folded in: y = fused_linear(x, weight, bias, options)
/// for x [B * S, K] (or [B, S, K]) against the stacked q, k and v rows of weight ([(Hq + 2 Hkv) D, K]), then
/// rope_kv_write of y's three parts into `targets`, none of which may overlap x. options.epilogue must be
/// Store. Where the product is one GEMV pass (fused_linear_single_pass) and the rotation covers whole heads
/// of a multiple of 8, the rotation and the cache writes are that pass's epilogue and y stays in f32;
/// otherwise y is rounded to x's dtype between the two ops.
void fused_linear_rope_kv(const Tensor& x, const Tensor& weight, const Tensor& bias,
                          const FusedLinearOptions& options, const RopeKvTargets& targets);

}  // namespace metallic
