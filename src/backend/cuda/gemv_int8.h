// The GEMV for block-quantized weights on integer dot products (the quantized half of gemv()).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/gemv.h"
#include "metallic/core/tensor.h"

namespace metallic::cuda {

/// True when gemv_int8() handles weights of `type`.
bool gemv_int8_supported(DType type);

/// out [M, N] = x' [M, K] times w^T (+ bias) under the fusion's epilogue, where x' is x, or under the
/// fusion's RMSNorm x normalised in f32, rounded to 8 bits in blocks of 32 (pool scratch): each block's
/// scale is d = max|x'| / 127 and its quants round x' * (1 / d) to the nearest integer, ties to even (f32
/// arithmetic), so the result is the exact product of those rounded rows with w up to f32 sums.
void gemv_int8(const Tensor& x, const Tensor& w, int64_t row_bytes, const float* bias, const GemvFusion& f,
               const Tensor& out, cudaStream_t s);

}  // namespace metallic::cuda
