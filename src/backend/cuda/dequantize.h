// Dequantization of GGUF storage types to float on a CUDA device.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "metallic/core/dtype.h"

namespace metallic::cuda {

/// Decodes `n` elements of `dtype` at device pointer `src` into device floats at `dst`, asynchronously on
/// `stream`, bit for bit as metallic::quant::dequantize does on the CPU. Same argument errors as the CPU
/// version; launch failures raise ErrorCode::Device.
void dequantize(DType dtype, const void* src, float* dst, int64_t n, cudaStream_t stream);

}  // namespace metallic::cuda
