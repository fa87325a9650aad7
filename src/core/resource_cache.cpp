#include "metallic/core/resource_cache.h"

namespace metallic {

std::shared_ptr<void> ResourceCache::lookup(std::type_index type, size_t hash, const void* key, Equals eq) {
  auto [first, last] = index_.equal_range(hash);
  for (auto it = first; it != last; ++it) {
    Entry& e = *it->second;
    if (e.type == type && eq(e.key.get(), key)) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return e.value;
    }
  }
  return nullptr;
}

void ResourceCache::insert(std::type_index type, size_t hash, std::shared_ptr<const void> key, Equals eq,
                           std::shared_ptr<void> value) {
  // Another thread may have built the same entry meanwhile; keep the first one.
  if (lookup(type, hash, key.get(), eq)) return;
  lru_.push_front(Entry{type, hash, std::move(key), eq, std::move(value)});
  index_.emplace(hash, lru_.begin());
  while (lru_.size() > capacity_) {
    auto victim = std::prev(lru_.end());
    auto [first, last] = index_.equal_range(victim->hash);
    for (auto it = first; it != last; ++it)
      if (it->second == victim) {
        index_.erase(it);
        break;
      }
    lru_.pop_back();
    ++stats_.evictions;
  }
}

std::vector<std::shared_ptr<void>> ResourceCache::values() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<void>> out;
  for (const Entry& e : lru_) out.push_back(e.value);
  return out;
}

CacheStats ResourceCache::stats() const {
  std::lock_guard lock(mutex_);
  CacheStats s = stats_;
  s.entries = lru_.size();
  return s;
}

void ResourceCache::clear() {
  std::lock_guard lock(mutex_);
  lru_.clear();
  index_.clear();
}

}  // namespace metallic
