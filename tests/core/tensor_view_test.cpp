#include <gtest/gtest.h>

#include <numeric>

#include "metallic/core/tensor.h"
#include "metallic/ops/creation.h"
#include "test_support.h"

namespace metallic {
namespace {

using test::BackendTest;

// Row-major values 0..n-1 as float, the reference every view below is checked against.
std::vector<float> iota_floats(size_t n) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), 0.f);
  return v;
}

class TensorViews : public BackendTest {};

TEST_P(TensorViews, NarrowSliceSelectKeepOffsets) {
  const Tensor t = Tensor::from_vector(ctx, iota_floats(24), {2, 3, 4});
  const Tensor n = t.narrow(2, 1, 2);  // [2,3,2]
  EXPECT_EQ(n.offset(), 4);
  EXPECT_EQ(n.to_vector<float>(), (std::vector<float>{1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22}));
  const Tensor s = t.slice(1, 0, 3, 2);  // rows 0 and 2
  EXPECT_EQ(s.shape(), Shape({2, 2, 4}));
  EXPECT_EQ(s.to_vector<float>(),
            (std::vector<float>{0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 20, 21, 22, 23}));
  const Tensor sel = t.select(0, -1).select(1, 3);  // t[1, :, 3]
  EXPECT_EQ(sel.to_vector<float>(), (std::vector<float>{15, 19, 23}));
  EXPECT_EQ(t.slice(0, 5, 9).numel(), 0);
}

TEST_P(TensorViews, TransposePermuteContiguous) {
  const Tensor t = Tensor::from_vector(ctx, iota_floats(6), {2, 3});
  const Tensor tt = t.transpose(0, 1);
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_EQ(tt.to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  const Tensor c = tt.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_NE(c.buffer(), t.buffer());
  EXPECT_EQ(t.contiguous().buffer(), t.buffer());  // already dense: no copy
  const Tensor u = Tensor::from_vector(ctx, iota_floats(24), {2, 3, 4}).permute({2, 0, 1});
  EXPECT_EQ(u.shape(), Shape({4, 2, 3}));
  EXPECT_EQ(u.to_vector<float>()[1], 4.f);   // u[0,0,1] = t[0,1,0]
  EXPECT_EQ(u.to_vector<float>()[3], 12.f);  // u[0,1,0] = t[1,0,0]
}

TEST_P(TensorViews, ReshapeViewsWhenStridesAllow) {
  const Tensor t = Tensor::from_vector(ctx, iota_floats(24), {2, 3, 4});
  const Tensor r = t.reshape({6, -1});
  EXPECT_EQ(r.shape(), Shape({6, 4}));
  EXPECT_EQ(r.buffer(), t.buffer());
  // A narrowed last dimension still splits along outer dimensions without a copy.
  const Tensor n = t.narrow(2, 0, 2);
  const Tensor nr = n.reshape({6, 2});
  EXPECT_EQ(nr.to_vector<float>(), n.to_vector<float>());
  EXPECT_EQ(t.flatten().shape(), Shape({24}));
  EXPECT_EQ(t.flatten(1).shape(), Shape({2, 12}));
  EXPECT_EQ(t.unsqueeze(0).shape(), Shape({1, 2, 3, 4}));
  EXPECT_EQ(t.unsqueeze(-1).shape(), Shape({2, 3, 4, 1}));
  EXPECT_EQ(t.unsqueeze(1).squeeze(1).shape(), t.shape());
  // Merging across a transposed pair needs a copy.
  EXPECT_METALLIC_ERROR(t.transpose(1, 2).reshape({2, 12}), ErrorCode::InvalidArgument);
  EXPECT_EQ(t.transpose(1, 2).contiguous().reshape({2, 12}).to_vector<float>()[1], 4.f);
  EXPECT_METALLIC_ERROR(t.reshape({5, 5}), ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(t.reshape({-1, -1}), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(t.squeeze(0), ErrorCode::InvalidArgument);
}

TEST_P(TensorViews, ExpandBroadcastsWithZeroStrides) {
  const Tensor row = Tensor::from_vector(ctx, iota_floats(3), {3});
  const Tensor e = row.expand({2, 3});
  EXPECT_EQ(e.stride(0), 0);
  EXPECT_EQ(e.to_vector<float>(), (std::vector<float>{0, 1, 2, 0, 1, 2}));
  EXPECT_METALLIC_ERROR(row.expand({2, 4}), ErrorCode::ShapeMismatch);
}

TEST_P(TensorViews, OutOfRangeViewsAreErrors) {
  const Tensor t = Tensor::from_vector(ctx, iota_floats(6), {2, 3});
  EXPECT_METALLIC_ERROR(t.narrow(1, 2, 2), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(t.select(0, 2), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(t.transpose(0, 2), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(t.permute({0, 0}), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(Tensor(t.buffer(), 8, {2, 3}, {3, 1}, DType::F32), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(Tensor::from_vector(ctx, iota_floats(5), {2, 3}), ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(t.to_vector<int32_t>(), ErrorCode::DTypeMismatch);
}

TEST_P(TensorViews, TransfersRoundTripThroughTheHost) {
  const auto host = Context::create(Device::cpu());
  const std::vector<float> values = test::random_floats(257, 7);
  const Tensor t = Tensor::from_vector(ctx, values, {257});
  const Tensor back = t.to(host);
  EXPECT_EQ(back.device(), Device::cpu());
  EXPECT_EQ(back.to_vector<float>(), values);
  const Tensor there = back.narrow(0, 1, 256).to(ctx);
  EXPECT_EQ(there.to_vector<float>(), std::vector<float>(values.begin() + 1, values.end()));
  const std::vector<int32_t> ints = {1, -2, 3};
  EXPECT_EQ(Tensor::from_vector(ctx, ints, {3}).to_vector<int32_t>(), ints);
}

TEST_P(TensorViews, QuantizedRowsMustBeWholeBlocks) {
  const Tensor q = Tensor::empty(ctx, {4, 64}, DType::Q8_0);
  EXPECT_EQ(q.nbytes(), 4 * 2 * 34);
  EXPECT_EQ(q.narrow(0, 1, 2).offset(), 68);
  EXPECT_METALLIC_ERROR(q.narrow(1, 0, 16), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(Tensor::empty(ctx, {3, 40}, DType::Q4_K), ErrorCode::InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Cpu, TensorViews, ::testing::Values(Device::cpu()));
INSTANTIATE_TEST_SUITE_P(Cuda, TensorViews, ::testing::Values(Device::cuda()));

}  // namespace
}  // namespace metallic
