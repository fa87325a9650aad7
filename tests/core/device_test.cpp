#include "metallic/core/device.h"

#include <gtest/gtest.h>

#include "metallic/core/context.h"
#include "metallic/core/resource_cache.h"
#include "metallic/core/tensor.h"
#include "test_support.h"

namespace metallic {
namespace {

TEST(Device, ParseAndPrint) {
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_EQ(Device::parse("cuda"), Device::cuda(0));
  EXPECT_EQ(Device::parse("cuda:3"), Device::cuda(3));
  EXPECT_EQ(Device::cuda(2).to_string(), "cuda:2");
  EXPECT_METALLIC_ERROR(Device::parse("cuda:x"), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(Device::parse("metal"), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(Device::parse("cuda:-1"), ErrorCode::InvalidArgument);
}

TEST(Device, ListsTheCpuFirst) {
  const auto list = devices();
  ASSERT_FALSE(list.empty());
  EXPECT_EQ(list.front().device, Device::cpu());
  EXPECT_GT(list.front().total_memory, 0);
  EXPECT_EQ(static_cast<int>(list.size()), 1 + cuda_device_count());
}

TEST(Device, AbsentDeviceIsAnError) {
  const ErrorCode expected = cuda_built() ? ErrorCode::Device : ErrorCode::NotSupported;
  EXPECT_METALLIC_ERROR(Context::create(Device::cuda(cuda_device_count() + 7)), expected);
}

TEST(Context, TracksLiveAndPeakMemory) {
  const auto ctx = Context::create(Device::cpu());
  {
    const Tensor a = Tensor::empty(ctx, {1024}, DType::F32);
    const Tensor b = Tensor::empty(ctx, {512}, DType::F32);
    EXPECT_EQ(ctx->allocated_bytes(), 6144);
  }
  EXPECT_EQ(ctx->allocated_bytes(), 0);
  const Tensor c = Tensor::empty(ctx, {256}, DType::F32);
  EXPECT_EQ(ctx->allocated_bytes(), 1024);
  EXPECT_EQ(ctx->peak_allocated_bytes(), 6144);
}

TEST(Context, SeveralCoexist) {
  const auto a = Context::create(Device::cpu());
  const auto b = Context::create(Device::cpu(), ContextOptions{.cache_capacity = 3});
  EXPECT_NE(&a->pool(), &b->pool());
  EXPECT_EQ(b->cache().capacity(), 3u);
}

}  // namespace
}  // namespace metallic
