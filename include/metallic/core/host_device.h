// Marks functions that compile for both the host and CUDA devices.
#pragma once

#if defined(__CUDACC__)
#define MTL_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define MTL_HOST_DEVICE inline
#endif
