// A block of memory on one device, shared by every tensor view of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "metallic/core/device.h"

namespace metallic {

class Context;
class MemoryPool;

/// Owned or borrowed device memory. Buffers from a MemoryPool carry the serial of their
/// allocation so that use after the pool was reset past them raises an error.
class Buffer {
 public:
  /// `bytes` of fresh long-lived memory on the context's device.
  static std::shared_ptr<Buffer> allocate(const std::shared_ptr<Context>& context, size_t bytes);
  /// Borrows `data` (e.g. a mapped file); `keep_alive` is held until the buffer dies.
  static std::shared_ptr<Buffer> wrap(const std::shared_ptr<Context>& context, void* data, size_t bytes,
                                      std::shared_ptr<const void> keep_alive);
  /// Memory inside a pool's arena; only MemoryPool creates these.
  static std::shared_ptr<Buffer> from_pool(const std::shared_ptr<Context>& context, void* data, size_t bytes,
                                           const MemoryPool* pool, uint64_t serial);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  /// Base address; InvalidArgument if the pool memory behind it was reset or released.
  void* data() const;
  size_t size() const { return size_; }
  const Device& device() const;
  const std::shared_ptr<Context>& context() const { return context_; }
  /// False once the pool that handed this buffer out has been reset past it.
  bool valid() const;

 private:
  Buffer() = default;

  std::shared_ptr<Context> context_;
  void* data_ = nullptr;
  size_t size_ = 0;
  bool owned_ = false;
  std::shared_ptr<const void> keep_alive_;
  const MemoryPool* pool_ = nullptr;
  uint64_t serial_ = 0;
};

}  // namespace metallic
