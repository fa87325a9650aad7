// Counters in device memory that kernels leave at zero: a grid counts its finished blocks on one, the last
// block merges their partial results and puts the counter back, so a call needs no memset and a captured
// graph can replay it.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string_view>

#include "metallic/core/tensor.h"

namespace metallic::cuda {

/// At least `needed` zeroed int counters on `like`'s device, shared by every call that names the same
/// `owner`; allocated and zeroed on `stream` at the first call, kept in the context's resource cache.
int* zeroed_counters(const Tensor& like, int64_t needed, std::string_view owner, cudaStream_t stream);

}  // namespace metallic::cuda
