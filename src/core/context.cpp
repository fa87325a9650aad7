#include "metallic/core/context.h"

#include "backend/runtime.h"
#include "metallic/core/memory_pool.h"
#include "metallic/core/resource_cache.h"

namespace metallic {

std::shared_ptr<Context> Context::create(Device device, const ContextOptions& options) {
  return std::shared_ptr<Context>(new Context(device, options));
}

Context::Context(Device device, const ContextOptions& options)
    : device_(device),
      native_(std::make_unique<backend::NativeHandles>(backend::runtime(device.type).create_handles(device))),
      pool_(std::make_unique<MemoryPool>(*this, options.pool_capacity, options.pool_chunk_bytes)),
      cache_(std::make_unique<ResourceCache>(options.cache_capacity)) {}

Context::~Context() {
  // Cached objects and pool chunks may hold device resources: drop them before the stream goes.
  cache_.reset();
  pool_.reset();
  backend::runtime(device_.type).destroy_handles(device_, *native_);
}

void Context::synchronize() const { backend::runtime(device_.type).synchronize(*native_); }

}  // namespace metallic
