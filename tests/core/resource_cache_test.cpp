#include "metallic/core/resource_cache.h"

#include <gtest/gtest.h>

namespace metallic {
namespace {

// Shaped like the GEMM plan key the matmul backend uses.
struct PlanKey {
  int64_t m, n, k;
  bool transpose_a;
  bool operator==(const PlanKey&) const = default;
  size_t hash() const { return hash_fields(m, n, k, transpose_a); }
};

// A second key type whose fields hash identically, to prove types never collide.
struct OtherKey {
  int64_t m, n, k;
  bool transpose_a;
  bool operator==(const OtherKey&) const = default;
  size_t hash() const { return hash_fields(m, n, k, transpose_a); }
};

TEST(ResourceCache, HitsMissesAndReuse) {
  ResourceCache cache(8);
  int builds = 0;
  auto make = [&] {
    ++builds;
    return std::make_shared<int>(builds);
  };
  const auto a = cache.get_or_create<int>(PlanKey{64, 64, 64, false}, make);
  const auto b = cache.get_or_create<int>(PlanKey{64, 64, 64, false}, make);
  const auto c = cache.get_or_create<int>(PlanKey{64, 64, 128, false}, make);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(builds, 2);
  const CacheStats s = cache.stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.entries, 2u);
}

TEST(ResourceCache, KeyTypesAreSeparate) {
  ResourceCache cache(8);
  const auto a = cache.get_or_create<int>(PlanKey{1, 2, 3, true}, [] { return std::make_shared<int>(1); });
  const auto b = cache.get_or_create<int>(OtherKey{1, 2, 3, true}, [] { return std::make_shared<int>(2); });
  EXPECT_EQ(*a, 1);
  EXPECT_EQ(*b, 2);
  EXPECT_EQ(cache.stats().misses, 2u);
}

TEST(ResourceCache, EvictsLeastRecentlyUsed) {
  ResourceCache cache(2);
  auto value = [](int v) { return [v] { return std::make_shared<int>(v); }; };
  cache.get_or_create<int>(PlanKey{1, 1, 1, false}, value(1));
  cache.get_or_create<int>(PlanKey{2, 2, 2, false}, value(2));
  cache.get_or_create<int>(PlanKey{1, 1, 1, false}, value(-1));  // touch 1: now 2 is the oldest
  const auto held = cache.get_or_create<int>(PlanKey{3, 3, 3, false}, value(3));
  CacheStats s = cache.stats();
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(s.entries, 2u);
  EXPECT_EQ(*cache.get_or_create<int>(PlanKey{1, 1, 1, false}, value(-1)), 1);   // survived
  EXPECT_EQ(*cache.get_or_create<int>(PlanKey{2, 2, 2, false}, value(20)), 20);  // rebuilt
  EXPECT_EQ(*held, 3);  // an evicted value stays alive for its holders
  cache.clear();
  EXPECT_EQ(cache.stats().entries, 0u);
}

TEST(ResourceCache, ValuesOutliveEvictionWhileHeld) {
  ResourceCache cache(1);
  cache.get_or_create<int>(PlanKey{1, 1, 1, false}, [] { return std::make_shared<int>(7); });
  const std::vector<std::shared_ptr<void>> held = cache.values();
  ASSERT_EQ(held.size(), 1u);
  cache.get_or_create<int>(PlanKey{2, 2, 2, false}, [] { return std::make_shared<int>(8); });  // evicts 7
  EXPECT_EQ(*std::static_pointer_cast<int>(held[0]), 7);
  EXPECT_EQ(held[0].use_count(), 1);  // only this holder is left
}

}  // namespace
}  // namespace metallic
