// Marks functions that compile for both the host and CUDA devices; write `MTL_HOST_DEVICE inline`.
#pragma once

#if defined(__CUDACC__)
#define MTL_HOST_DEVICE __host__ __device__
#else
#define MTL_HOST_DEVICE
#endif
