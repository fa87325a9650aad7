// The fused dequantize-GEMV behind linear() for at most 8 rows of x (decoding): out[m, n] = x[m, :] W[n, :]
// + bias[n], reading each weight byte once from device memory.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/rope_kv_epilogue.cuh"
#include "metallic/core/tensor.h"
#include "metallic/ops/fused_linear.h"

namespace metallic::cuda {

/// Rows of x the GEMV accepts.
constexpr int64_t kGemvMaxRows = 8;

/// True when gemv() handles `rows` rows of x against `w`: at most kGemvMaxRows, sizes its 32-bit indices
/// reach, a type it decodes and the alignment it needs.
bool gemv_takes(const Tensor& w, int64_t rows);

/// The steps of fused_linear the GEMV folds around its product.
struct GemvFusion {
  bool rms_norm = false;        ///< normalise each row of x over K first
  const float* norm = nullptr;  ///< the norm's gain [K] (f32), null: ones
  float eps = 0.f;              ///< the norm's epsilon
  LinearEpilogue epilogue = LinearEpilogue::Store;
  /// When set (epilogue Store, `out` unused), the product goes to RoPE and the KV caches.
  const RopeKvEpilogue* rope_kv = nullptr;
  /// The weights, bias and gain are not written by the kernel before (FusedLinearOptions::static_weights).
  bool static_weights = false;
};

/// out [M, N] (dense, x's dtype) = x [M, K] (dense rows, M <= kGemvMaxRows) times w^T, plus `bias` (f32 [N]
/// or null), with `fusion` applied (out [M, N / 2] for SwiGLU; none with rope_kv).
void gemv(const Tensor& x, const Tensor& w, const float* bias, const Tensor& out, cudaStream_t s,
          const GemvFusion& fusion = {});

}  // namespace metallic::cuda
