#include "backend/runtime.h"

#include "metallic/core/error.h"

namespace metallic::backend {

const Runtime& cpu_runtime();
#if METALLIC_WITH_CUDA
const Runtime& cuda_runtime();
#endif

const Runtime& runtime(DeviceType type) {
  switch (type) {
    case DeviceType::Cpu: return cpu_runtime();
    case DeviceType::Cuda:
#if METALLIC_WITH_CUDA
      return cuda_runtime();
#else
      fail(ErrorCode::NotSupported, "this build of metallic has no CUDA backend (configured without nvcc)");
#endif
  }
  fail(ErrorCode::Internal, "unknown device type");
}

const Runtime& copy_runtime(const Device& dst, const Device& src) {
  return runtime(dst.is_cuda() || src.is_cuda() ? DeviceType::Cuda : DeviceType::Cpu);
}

}  // namespace metallic::backend
