// One place that turns CUDA, cuBLAS and launch failures into metallic::Error, quoting the failing call.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "metallic/core/error.h"

namespace metallic::cuda {

/// Raises Device (OutOfMemory for allocation failures) unless `status` is cudaSuccess.
inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear the sticky-free error so later calls do not report it again
  const ErrorCode code = status == cudaErrorMemoryAllocation ? ErrorCode::OutOfMemory : ErrorCode::Device;
  fail(code, call, " failed: ", cudaGetErrorString(status), " (", file, ":", line, ")");
}

/// Raises Device unless `status` is CUBLAS_STATUS_SUCCESS.
inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  const ErrorCode code = status == CUBLAS_STATUS_ALLOC_FAILED ? ErrorCode::OutOfMemory : ErrorCode::Device;
  fail(code, call, " failed: ", cublasGetStatusString(status), " (", file, ":", line, ")");
}

}  // namespace metallic::cuda

#define MTL_CUDA_CHECK(call) ::metallic::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define MTL_CUBLAS_CHECK(call) ::metallic::cuda::check_cublas((call), #call, __FILE__, __LINE__)
/// Checks the launch just issued (bad configuration, missing kernel image).
#define MTL_CUDA_CHECK_LAUNCH(name) ::metallic::cuda::check_cuda(cudaGetLastError(), name, __FILE__, __LINE__)
