// Row conversions between float and the GGUF storage types on the CPU (the reference the CUDA kernels match).
#pragma once

#include <cstdint>
#include <optional>

#include "metallic/core/dtype.h"

namespace metallic::quant {

/// True when dequantize() handles `dtype`.
bool can_dequantize(DType dtype);
/// True when quantize() handles `dtype`.
bool can_quantize(DType dtype);

/// Decodes `n` consecutive elements of `dtype` at `src` into floats. `n` must be a multiple of the block size
/// (ErrorCode::InvalidArgument); types without a decoder raise ErrorCode::NotSupported.
void dequantize(DType dtype, const void* src, float* dst, int64_t n);

/// Encodes `n` floats as `dtype` exactly as ggml's reference quantizers do (quantize_row_*_ref), so the bytes
/// match files made by llama.cpp. Handles F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K, and Q4_0X8 / Q8_0X8 as
/// their base type's blocks, grouped.
void quantize(DType dtype, const float* src, void* dst, int64_t n);

/// The dtype that holds `dtype`'s blocks in groups of eight (Q4_0: Q4_0X8, Q8_0: Q8_0X8), if there is one.
std::optional<DType> grouped_dtype(DType dtype);

/// Rewrites `n` consecutive elements of Q4_0 or Q8_0 at `src` as grouped_dtype(dtype) at `dst` (the same
/// bytes, reordered; the values decode bit for bit alike). `n` must be a multiple of 256.
void group_blocks(DType dtype, const void* src, void* dst, int64_t n);

}  // namespace metallic::quant
