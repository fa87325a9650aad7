// The backend seam for memory and streams: one Runtime per device type, chosen in runtime.cpp.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "metallic/core/device.h"

namespace metallic::backend {

/// Library handles a context keeps for its device (null on the CPU).
struct NativeHandles {
  void* stream = nullptr;   ///< cudaStream_t
  void* blas = nullptr;     ///< cublasHandle_t
  void* blas_lt = nullptr;  ///< cublasLtHandle_t
};

/// Memory, copies, streams and device queries of one device type.
class Runtime {
 public:
  virtual ~Runtime() = default;
  /// `bytes` of device memory ordered on `stream`; OutOfMemory when the device has none left.
  virtual void* allocate(const Device& device, size_t bytes, void* stream) const = 0;
  virtual void deallocate(const Device& device, void* ptr, void* stream) const noexcept = 0;
  /// Copies `bytes`; returns once the bytes are readable by the host if `dst` is host memory.
  virtual void copy(void* dst, const void* src, size_t bytes, void* stream) const = 0;
  virtual NativeHandles create_handles(const Device& device) const = 0;
  virtual void destroy_handles(const Device& device, const NativeHandles& handles) const noexcept = 0;
  /// Waits until all work queued on `handles.stream` is done.
  virtual void synchronize(const NativeHandles& handles) const = 0;
  virtual std::vector<DeviceInfo> devices() const = 0;
  /// Starts recording the work queued on `handles.stream` instead of running it.
  virtual void begin_capture(const NativeHandles& handles) const = 0;
  /// Ends a recording; the replayable executable (null where the backend cannot replay, e.g. the CPU),
  /// or an error if the captured work failed (`ok` false discards the recording).
  virtual std::shared_ptr<void> end_capture(const NativeHandles& handles, bool ok) const = 0;
  /// Queues one replay of `executable` on `handles.stream`.
  virtual void replay(const NativeHandles& handles, const std::shared_ptr<void>& executable) const = 0;
};

/// The runtime of `type`; NotSupported when this build lacks that backend.
const Runtime& runtime(DeviceType type);
/// The runtime that performs a copy between `dst` and `src` (CUDA whenever either side is a GPU).
const Runtime& copy_runtime(const Device& dst, const Device& src);

}  // namespace metallic::backend
