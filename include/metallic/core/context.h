// The per-device owner of streams, library handles, the memory pool and the resource cache.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "metallic/core/device.h"

namespace metallic {

class MemoryPool;
class ResourceCache;
namespace backend {
struct NativeHandles;
}

/// Sizes a context is created with.
struct ContextOptions {
  size_t pool_capacity = size_t{1} << 30;      ///< most bytes the per-step arena may hold
  size_t pool_chunk_bytes = size_t{64} << 20;  ///< granularity in which the arena grows
  size_t cache_capacity = 512;                 ///< entries the resource cache keeps before evicting
};

/// Everything work on one device needs. Several contexts may exist, also for the same device
/// (each then has its own stream); tensors keep their context alive.
class Context : public std::enable_shared_from_this<Context> {
 public:
  /// A context for `device`; Device error when it is absent, NotSupported when the backend is not built.
  static std::shared_ptr<Context> create(Device device = Device::cpu(), const ContextOptions& options = {});
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const Device& device() const { return device_; }
  /// The arena for per-step temporaries.
  MemoryPool& pool() { return *pool_; }
  /// Cached plans and executables keyed by typed keys.
  ResourceCache& cache() { return *cache_; }
  /// Waits for all work queued on this context's stream.
  void synchronize() const;
  /// Device copy bandwidth in GB/s (bytes read plus bytes written per second), measured with a
  /// device-to-device copy of `bytes` on this context's stream (median of several repetitions).
  double measure_copy_bandwidth(size_t bytes = size_t{1} << 30);
  /// Bytes of device memory this context holds now (tensors and pool chunks).
  int64_t allocated_bytes() const { return allocated_.load(); }
  /// Most bytes this context ever held at once.
  int64_t peak_allocated_bytes() const { return peak_.load(); }
  /// Records an allocation (positive) or a release (negative) of device memory; for Buffer and MemoryPool.
  void track_allocation(int64_t delta);
  /// Backend handles (stream, cuBLAS); for backend code only.
  const backend::NativeHandles& native() const { return *native_; }

 private:
  Context(Device device, const ContextOptions& options);

  Device device_;
  std::unique_ptr<backend::NativeHandles> native_;
  std::unique_ptr<MemoryPool> pool_;
  std::unique_ptr<ResourceCache> cache_;
  std::atomic<int64_t> allocated_{0}, peak_{0};
};

}  // namespace metallic
