#include "metallic/core/context.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "backend/runtime.h"
#include "metallic/core/buffer.h"
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

void Context::track_allocation(int64_t delta) {
  const int64_t now = allocated_.fetch_add(delta) + delta;
  int64_t peak = peak_.load();
  while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
  }
}

double Context::measure_copy_bandwidth(size_t bytes) {
  const auto self = shared_from_this();
  const auto src = Buffer::allocate(self, bytes), dst = Buffer::allocate(self, bytes);
  const backend::Runtime& rt = backend::runtime(device_.type);
  std::vector<double> seconds;
  for (int i = 0; i < 12; ++i) {
    const auto start = std::chrono::steady_clock::now();
    rt.copy(dst->data(), src->data(), bytes, native_->stream);  // returns after the copy completes
    if (i >= 2)
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return 2.0 * static_cast<double>(bytes) / seconds[seconds.size() / 2] / 1e9;
}

void Context::synchronize() const { backend::runtime(device_.type).synchronize(*native_); }

}  // namespace metallic
