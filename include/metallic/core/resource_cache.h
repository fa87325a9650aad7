// Cached plans and executables (GEMM algorithm choices, CUDA graphs) under typed keys, LRU-bounded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <typeindex>
#include <unordered_map>
#include <vector>

namespace metallic {

/// Counters of a ResourceCache.
struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
  size_t entries = 0;
};

/// Mixes `value`'s hash into `seed`; for writing key hashes.
template <class T>
void hash_combine(size_t& seed, const T& value) {
  seed ^= std::hash<T>{}(value) + 0x9e3779b97f4a7c15ull + (seed << 6) + (seed >> 2);
}

/// Hash of several fields at once.
template <class... T>
size_t hash_fields(const T&... values) {
  size_t seed = 0;
  (hash_combine(seed, values), ...);
  return seed;
}

/// Maps keys of any type to shared values. A key type needs `operator==` and a member `size_t hash() const`;
/// keys of different types never collide. At capacity the least recently used entry is evicted
/// (holders of its shared_ptr keep it alive).
class ResourceCache {
 public:
  explicit ResourceCache(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  /// The value for `key`, built by `make()` (returning std::shared_ptr<Value>) on a miss.
  template <class Value, class Key, class Make>
  std::shared_ptr<Value> get_or_create(const Key& key, Make&& make) {
    const size_t h = key.hash();
    {
      std::lock_guard lock(mutex_);
      if (auto found = lookup(typeid(Key), h, &key, &equals<Key>)) {
        ++stats_.hits;
        return std::static_pointer_cast<Value>(found);
      }
      ++stats_.misses;
    }
    std::shared_ptr<Value> value = make();  // outside the lock: building may itself use the cache
    std::lock_guard lock(mutex_);
    insert(typeid(Key), h, std::make_shared<Key>(key), &equals<Key>, value);
    return value;
  }

  /// Shared references to every cached object; holding them keeps the objects alive past eviction (as a
  /// captured graph that uses their memory needs).
  std::vector<std::shared_ptr<void>> values() const;
  /// Current counters.
  CacheStats stats() const;
  /// Drops every entry (counters stay).
  void clear();
  size_t capacity() const { return capacity_; }

 private:
  using Equals = bool (*)(const void*, const void*);
  struct Entry {
    std::type_index type;
    size_t hash;
    std::shared_ptr<const void> key;
    Equals equals;
    std::shared_ptr<void> value;
  };

  template <class Key>
  static bool equals(const void* a, const void* b) {
    return *static_cast<const Key*>(a) == *static_cast<const Key*>(b);
  }
  std::shared_ptr<void> lookup(std::type_index type, size_t hash, const void* key, Equals eq);
  void insert(std::type_index type, size_t hash, std::shared_ptr<const void> key, Equals eq,
              std::shared_ptr<void> value);

  size_t capacity_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_multimap<size_t, std::list<Entry>::iterator> index_;
  CacheStats stats_;
  mutable std::mutex mutex_;
};

}  // namespace metallic
