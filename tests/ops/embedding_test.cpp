#include "metallic/ops/embedding.h"

#include <gtest/gtest.h>

#include "metallic/model/quant.h"
#include "metallic/ops/copy.h"
#include "test_support.h"

namespace metallic {
namespace {

struct Param {
  Device device;
  DType table;
};

class Embedding : public test::DeviceTest<Param> {};

TEST_P(Embedding, GathersRows) {
  const DType tt = GetParam().table;
  const int64_t v = 37, d = info(tt).block_size >= 256 ? 512 : 96;
  const auto vals = test::random_floats(static_cast<size_t>(v * d), 1);
  std::vector<uint8_t> raw(static_cast<size_t>(storage_bytes(tt, v * d)));
  quant::quantize(tt, vals.data(), raw.data(), v * d);
  std::vector<float> deq(vals.size());
  quant::dequantize(tt, raw.data(), deq.data(), v * d);
  Tensor u8 = Tensor::from_vector<uint8_t>(ctx, raw, {static_cast<int64_t>(raw.size())});
  Tensor table(u8.buffer(), u8.offset(), {v, d}, {d, 1}, tt);
  const std::vector<int32_t> ids = {0, 36, 5, 5, 17, 1};
  Tensor idt = Tensor::from_vector<int32_t>(ctx, ids, {2, 3});
  for (DType out : {DType::F32, DType::BF16, DType::F16}) {
    Tensor y = embedding(table, idt, out);
    ASSERT_EQ(y.shape(), (Shape{2, 3, d}));
    std::vector<double> want;
    for (int32_t id : ids)
      for (int64_t j = 0; j < d; ++j) want.push_back(deq[static_cast<size_t>(id * d + j)]);
    const double tol = out == DType::F32 ? 0 : out == DType::F16 ? 1e-3 : 8e-3;
    EXPECT_LE(test::max_rel_error(y.to_vector<float>(), want), tol) << name(out);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cpu, Embedding,
    ::testing::Values(Param{Device::cpu(), DType::F32}, Param{Device::cpu(), DType::F16},
                      Param{Device::cpu(), DType::BF16}, Param{Device::cpu(), DType::Q8_0},
                      Param{Device::cpu(), DType::Q4_0}, Param{Device::cpu(), DType::Q4_K},
                      Param{Device::cpu(), DType::Q6_K}, Param{Device::cpu(), DType::Q4_0X8}),
    [](const auto& p) { return std::string(name(p.param.table)); });
INSTANTIATE_TEST_SUITE_P(
    Cuda, Embedding,
    ::testing::Values(Param{Device::cuda(), DType::F32}, Param{Device::cuda(), DType::F16},
                      Param{Device::cuda(), DType::BF16}, Param{Device::cuda(), DType::Q8_0},
                      Param{Device::cuda(), DType::Q4_0}, Param{Device::cuda(), DType::Q4_K},
                      Param{Device::cuda(), DType::Q6_K}, Param{Device::cuda(), DType::Q4_0X8},
                      Param{Device::cuda(), DType::Q8_0X8}),
    [](const auto& p) { return std::string(name(p.param.table)); });

class EmbeddingMisc : public test::BackendTest {};

TEST_P(EmbeddingMisc, OutOfRangeAndErrors) {
  Tensor table = Tensor::from_vector<float>(ctx, test::random_floats(12, 1), {4, 3});
  Tensor bad = Tensor::from_vector<int32_t>(ctx, std::vector<int32_t>{1, 4}, {2});
  if (ctx->device().is_cpu()) {
    EXPECT_METALLIC_ERROR(embedding(table, bad), ErrorCode::InvalidArgument);
  } else {
    const auto y = embedding(table, bad).to_vector<float>();
    EXPECT_EQ(y[3], 0.f);
    EXPECT_EQ(y[5], 0.f);
  }
  Tensor ids64 = Tensor::from_vector<int64_t>(ctx, std::vector<int64_t>{1}, {1});
  EXPECT_METALLIC_ERROR(embedding(table, ids64), ErrorCode::DTypeMismatch);
  Tensor t8 = Tensor::from_vector<int32_t>(ctx, std::vector<int32_t>(12, 0), {4, 3});
  EXPECT_METALLIC_ERROR(embedding(t8, Tensor::from_vector<int32_t>(ctx, std::vector<int32_t>{1}, {1})),
                        ErrorCode::NotSupported);
}

// Rows of whole 16-byte words in the output dtype (the plain copy path), more ids than the copy moves at
// once, and on CUDA ids outside the table (zero rows).
TEST_P(EmbeddingMisc, CopiesWideRowsForManyIds) {
  const int64_t v = 50, d = 1000, t = 300;
  const Tensor table =
      cast(Tensor::from_vector(ctx, test::random_floats(static_cast<size_t>(v * d), 2), {v, d}), DType::BF16);
  const std::vector<float> vt = table.to_vector<float>();
  std::vector<int32_t> ids(static_cast<size_t>(t));
  for (int64_t i = 0; i < t; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>((i * 37) % v);
  if (ctx->device().is_cuda()) {
    ids[7] = -1;
    ids[200] = static_cast<int32_t>(v);
  }
  const Tensor y = embedding(table, Tensor::from_vector<int32_t>(ctx, ids, {t}), DType::BF16);
  ASSERT_EQ(y.shape(), (Shape{t, d}));
  ASSERT_EQ(y.dtype(), DType::BF16);
  const std::vector<float> vy = y.to_vector<float>();
  int64_t wrong = 0;
  for (int64_t i = 0; i < t; ++i) {
    const int32_t id = ids[static_cast<size_t>(i)];
    for (int64_t j = 0; j < d; ++j) {
      const float want = id >= 0 && id < v ? vt[static_cast<size_t>(id * d + j)] : 0.f;
      wrong += vy[static_cast<size_t>(i * d + j)] != want;
    }
  }
  EXPECT_EQ(wrong, 0);
}

INSTANTIATE_TEST_SUITE_P(Cpu, EmbeddingMisc, ::testing::Values(Device::cpu()));
INSTANTIATE_TEST_SUITE_P(Cuda, EmbeddingMisc, ::testing::Values(Device::cuda()));

}  // namespace
}  // namespace metallic
