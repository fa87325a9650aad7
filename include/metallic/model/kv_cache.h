// Keys and values of every layer for the positions a sequence has seen so far.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "metallic/core/tensor.h"
#include "metallic/model/config.h"

namespace metallic {

/// Per-layer K and V tensors [1, capacity, n_kv_heads, head_dim] (seq-major, so appending a token writes one
/// contiguous slab) and the number of positions filled.
class KVCache {
 public:
  /// A cache for `capacity` positions in `dtype` (f16 on CUDA and f32 on the CPU by default).
  KVCache(const std::shared_ptr<Context>& context, const ModelConfig& config, int64_t capacity, DType dtype);

  int64_t capacity() const { return capacity_; }
  /// Positions filled so far.
  int64_t size() const { return size_; }
  DType dtype() const { return dtype_; }
  /// Bytes held by all layers.
  int64_t bytes() const;
  /// Layer `layer`'s keys, all `capacity` positions.
  const Tensor& keys(int64_t layer) const { return keys_[static_cast<size_t>(layer)]; }
  /// Layer `layer`'s values, all `capacity` positions.
  const Tensor& values(int64_t layer) const { return values_[static_cast<size_t>(layer)]; }
  /// InvalidArgument (context overflow) unless `count` more positions fit.
  void reserve(int64_t count) const;
  /// Marks `count` more positions as filled.
  void advance(int64_t count);
  /// Drops positions from `size` on (e.g. to rewind a chat turn).
  void truncate(int64_t size);
  /// Names the storage: copies of a cache share it, separately made caches never do.
  uint64_t storage_id() const { return storage_id_; }

 private:
  int64_t capacity_;
  int64_t size_ = 0;
  DType dtype_;
  uint64_t storage_id_;
  std::vector<Tensor> keys_, values_;
};

}  // namespace metallic
