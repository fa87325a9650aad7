#include "metallic/model/kv_cache.h"

#include <atomic>

#include "metallic/core/error.h"

namespace metallic {
namespace {
std::atomic<uint64_t> next_storage_id{1};
}  // namespace

KVCache::KVCache(const std::shared_ptr<Context>& context, const ModelConfig& config, int64_t capacity,
                 DType dtype)
    : capacity_(capacity), dtype_(dtype), storage_id_(next_storage_id++) {
  check(capacity > 0, ErrorCode::InvalidArgument, "kv cache: capacity must be positive, got ", capacity);
  check(is_compute_float(dtype), ErrorCode::NotSupported, "kv cache: dtype ", name(dtype),
        " (f32, f16 or bf16)");
  const Shape shape{1, capacity, config.n_kv_heads, config.head_dim};
  for (int64_t l = 0; l < config.n_layers; ++l) {
    keys_.push_back(Tensor::empty(context, shape, dtype));
    values_.push_back(Tensor::empty(context, shape, dtype));
  }
}

int64_t KVCache::bytes() const {
  int64_t total = 0;
  for (size_t l = 0; l < keys_.size(); ++l) total += keys_[l].nbytes() + values_[l].nbytes();
  return total;
}

void KVCache::reserve(int64_t count) const {
  check(count >= 0 && size_ + count <= capacity_, ErrorCode::InvalidArgument, "context overflow: ", size_,
        " positions used + ", count, " new exceed the context size ", capacity_, " (raise --ctx)");
}

void KVCache::advance(int64_t count) {
  reserve(count);
  size_ += count;
}

void KVCache::truncate(int64_t size) {
  check(size >= 0 && size <= size_, ErrorCode::InvalidArgument, "kv cache: cannot truncate ", size_,
        " positions to ", size);
  size_ = size;
}

}  // namespace metallic
