// Turns a failed CUDA runtime call into a metallic::Error that quotes the call and CUDA's description.
#pragma once

#include <cuda_runtime.h>

#include "metallic/core/error.h"

/// Evaluates `call` (a cudaError_t expression) and throws ErrorCode::Device naming it unless it succeeded.
#define MTL_CUDA_CHECK(call)                                                                              \
  do {                                                                                                    \
    const cudaError_t mtl_cuda_status_ = (call);                                                          \
    if (mtl_cuda_status_ != cudaSuccess)                                                                  \
      ::metallic::fail(::metallic::ErrorCode::Device, #call, ": ", cudaGetErrorString(mtl_cuda_status_)); \
  } while (0)
