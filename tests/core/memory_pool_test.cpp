#include "metallic/core/memory_pool.h"

#include <gtest/gtest.h>

#include "metallic/core/tensor.h"
#include "metallic/ops/creation.h"
#include "test_support.h"

namespace metallic {
namespace {

class MemoryPoolTest : public test::BackendTest {
 protected:
  void SetUp() override {
    if (GetParam().is_cuda() && cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device present";
    ctx =
        Context::create(GetParam(), ContextOptions{.pool_capacity = 1 << 20, .pool_chunk_bytes = 256 << 10});
  }
};

TEST_P(MemoryPoolTest, AllocationsAreAlignedAndDisjoint) {
  MemoryPool& pool = ctx->pool();
  const Tensor a = Tensor::empty(ctx, {3}, DType::F32, Storage::Pool);
  const Tensor b = Tensor::empty(ctx, {100}, DType::F16, Storage::Pool);
  const auto pa = reinterpret_cast<uintptr_t>(a.data()), pb = reinterpret_cast<uintptr_t>(b.data());
  EXPECT_EQ(pa % MemoryPool::kAlignment, 0u);
  EXPECT_EQ(pb % MemoryPool::kAlignment, 0u);
  EXPECT_GE(pb, pa + 12);
  EXPECT_EQ(pool.used(), 2 * MemoryPool::kAlignment);
  fill(a, 2.0);
  fill(b, -1.0);
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{2, 2, 2}));
  EXPECT_EQ(b.to_vector<float>()[99], -1.f);
}

TEST_P(MemoryPoolTest, UseAfterResetIsAnError) {
  const Tensor a = Tensor::empty(ctx, {16}, DType::F32, Storage::Pool);
  fill(a, 1.0);
  ctx->pool().reset();
  EXPECT_EQ(ctx->pool().used(), 0u);
  EXPECT_FALSE(a.buffer()->valid());
  EXPECT_METALLIC_ERROR(a.data(), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(fill(a, 2.0), ErrorCode::InvalidArgument);
  // The memory is reused by the next allocation, which stays valid.
  const Tensor b = Tensor::empty(ctx, {16}, DType::F32, Storage::Pool);
  EXPECT_TRUE(b.buffer()->valid());
  EXPECT_FALSE(a.buffer()->valid());
}

TEST_P(MemoryPoolTest, ReleaseToMarkFreesOnlyLaterAllocations) {
  MemoryPool& pool = ctx->pool();
  const Tensor keep = Tensor::empty(ctx, {8}, DType::F32, Storage::Pool);
  const MemoryPool::Mark m = pool.mark();
  const Tensor temp = Tensor::empty(ctx, {8}, DType::F32, Storage::Pool);
  pool.release(m);
  EXPECT_TRUE(keep.buffer()->valid());
  EXPECT_FALSE(temp.buffer()->valid());
  const Tensor again = Tensor::empty(ctx, {8}, DType::F32, Storage::Pool);
  EXPECT_EQ(again.data(), static_cast<void*>(static_cast<char*>(keep.data()) + MemoryPool::kAlignment));
  EXPECT_FALSE(temp.buffer()->valid());
  EXPECT_EQ(pool.peak(), 2 * MemoryPool::kAlignment);
}

TEST_P(MemoryPoolTest, ExhaustionNamesRequestAndFreeBytes) {
  const Tensor big = Tensor::empty(ctx, {200 << 10}, DType::F32, Storage::Pool);  // 800 KiB
  try {
    Tensor::empty(ctx, {100 << 10}, DType::F32, Storage::Pool);  // 400 KiB more than the 1 MiB capacity
    FAIL() << "expected OutOfMemory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::OutOfMemory);
    EXPECT_NE(std::string(e.what()).find("409600 bytes"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("free"), std::string::npos) << e.what();
  }
  ctx->pool().reset();
  EXPECT_NO_THROW(Tensor::empty(ctx, {200 << 10}, DType::F32, Storage::Pool));
  (void)big;
}

INSTANTIATE_TEST_SUITE_P(Cpu, MemoryPoolTest, ::testing::Values(Device::cpu()));
INSTANTIATE_TEST_SUITE_P(Cuda, MemoryPoolTest, ::testing::Values(Device::cuda()));

}  // namespace
}  // namespace metallic
