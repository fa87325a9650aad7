#include "metallic/ops/creation.h"

#include <gtest/gtest.h>

#include <cmath>

#include "metallic/ops/copy.h"
#include "test_support.h"

namespace metallic {
namespace {

class Creation : public test::BackendTest {};

TEST_P(Creation, ConstantsAndLikes) {
  EXPECT_EQ(zeros(ctx, {2, 2}).to_vector<float>(), std::vector<float>(4, 0.f));
  EXPECT_EQ(ones(ctx, {3}, DType::BF16).to_vector<float>(), std::vector<float>(3, 1.f));
  EXPECT_EQ(full(ctx, {2}, -7, DType::I32).to_vector<int32_t>(), (std::vector<int32_t>{-7, -7}));
  const Tensor like = full(ctx, {2, 3}, 5.0, DType::F16);
  const Tensor z = zeros_like(like), o = ones_like(like);
  EXPECT_EQ(z.dtype(), DType::F16);
  EXPECT_EQ(z.shape(), like.shape());
  EXPECT_EQ(o.to_vector<float>(), std::vector<float>(6, 1.f));
  EXPECT_EQ(full(ctx, {}, 2.5).to_vector<float>(), std::vector<float>{2.5f});
}

TEST_P(Creation, FillWritesOnlyTheView) {
  const Tensor t = zeros(ctx, {3, 4});
  fill(t.narrow(1, 1, 2).narrow(0, 1, 2), 9.0);
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{0, 0, 0, 0, 0, 9, 9, 0, 0, 9, 9, 0}));
}

TEST_P(Creation, Arange) {
  EXPECT_EQ(arange(ctx, 0, 5).to_vector<float>(), (std::vector<float>{0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(ctx, 1, -1, -0.5).to_vector<float>(), (std::vector<float>{1, 0.5f, 0, -0.5f}));
  EXPECT_EQ(arange(ctx, 0, 3, 1, DType::I32).to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(arange(ctx, 3, 0).numel(), 0);
  EXPECT_METALLIC_ERROR(arange(ctx, 0, 1, 0), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(arange(ctx, 0, INFINITY), ErrorCode::InvalidArgument);
}

TEST_P(Creation, RandomDrawsHaveTheirMomentsAndRepeat) {
  const int64_t n = 1 << 16;
  const std::vector<float> u = uniform(ctx, {n}, 42, -1.0, 3.0).to_vector<float>();
  const std::vector<float> g = normal(ctx, {n}, 42, 0.5, 2.0).to_vector<float>();
  double su = 0, sg = 0, sg2 = 0;
  float lo = 1e9f, hi = -1e9f;
  for (float x : u) {
    su += x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  for (float x : g) {
    sg += x;
    sg2 += (x - 0.5) * (x - 0.5);
  }
  // Standard errors: uniform mean 1 +- 0.0045, normal mean 0.5 +- 0.008, variance 4 +- 0.022.
  EXPECT_NEAR(su / n, 1.0, 0.03);
  EXPECT_GE(lo, -1.f);
  EXPECT_LT(hi, 3.f);
  EXPECT_NEAR(sg / n, 0.5, 0.05);
  EXPECT_NEAR(sg2 / n, 4.0, 0.15);
  EXPECT_EQ(uniform(ctx, {n}, 42, -1.0, 3.0).to_vector<float>(), u);
  EXPECT_NE(uniform(ctx, {n}, 43, -1.0, 3.0).to_vector<float>(), u);
  EXPECT_METALLIC_ERROR(normal(ctx, {2}, 1, 0, -1), ErrorCode::InvalidArgument);
}

TEST_P(Creation, SameSeedSameNumbersAsTheCpu) {
  const auto host = Context::create(Device::cpu());
  const std::vector<float> here = normal(ctx, {4099}, 7, 0, 1, DType::F32).to_vector<float>();
  const std::vector<float> cpu = normal(host, {4099}, 7, 0, 1, DType::F32).to_vector<float>();
  ASSERT_EQ(here.size(), cpu.size());
  for (size_t i = 0; i < here.size(); ++i) EXPECT_NEAR(here[i], cpu[i], 1e-6) << i;
  EXPECT_EQ(uniform(ctx, {513}, 9, 0, 1, DType::BF16).to_vector<float>(),
            uniform(host, {513}, 9, 0, 1, DType::BF16).to_vector<float>());
}

INSTANTIATE_TEST_SUITE_P(Cpu, Creation, ::testing::Values(Device::cpu()));
INSTANTIATE_TEST_SUITE_P(Cuda, Creation, ::testing::Values(Device::cuda()));

}  // namespace
}  // namespace metallic
