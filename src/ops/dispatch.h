// The one table that picks a backend: an op's front end calls MTL_DISPATCH(device, kernel, args...),
// which runs metallic::cpu::kernel or metallic::cuda::kernel. A third backend adds one branch here.
#pragma once

#include "metallic/core/error.h"

#if METALLIC_WITH_CUDA
#define MTL_DISPATCH(device, kernel, ...) \
  ((device).is_cuda() ? ::metallic::cuda::kernel(__VA_ARGS__) : ::metallic::cpu::kernel(__VA_ARGS__))
#else
#define MTL_DISPATCH(device, kernel, ...)                                                \
  ((device).is_cuda() ? ::metallic::fail(::metallic::ErrorCode::NotSupported, #kernel,   \
                                         ": this build of metallic has no CUDA backend") \
                      : ::metallic::cpu::kernel(__VA_ARGS__))
#endif
