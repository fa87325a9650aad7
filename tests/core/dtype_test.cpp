#include "metallic/core/dtype.h"

#include <gtest/gtest.h>

#include "metallic/core/error.h"

namespace metallic {
namespace {

TEST(DType, BlockFacts) {
  EXPECT_EQ(info(DType::Q4_K).block_size, 256);
  EXPECT_EQ(info(DType::Q4_K).block_bytes, 144);
  EXPECT_EQ(storage_bytes(DType::Q8_0, 64), 68);
  EXPECT_EQ(storage_bytes(DType::BF16, 3), 6);
  EXPECT_TRUE(is_quantized(DType::Q6_K));
  EXPECT_FALSE(is_quantized(DType::BF16));
  // Eight Q4_0 / Q8_0 blocks per group, with no GGUF id.
  EXPECT_EQ(storage_bytes(DType::Q4_0X8, 512), 2 * storage_bytes(DType::Q4_0, 256));
  EXPECT_EQ(storage_bytes(DType::Q8_0X8, 256), storage_bytes(DType::Q8_0, 256));
  EXPECT_EQ(info(DType::Q4_0X8).ggml_type, -1);
  EXPECT_EQ(dtype_from_name("q8_0x8"), DType::Q8_0X8);
  EXPECT_TRUE(is_quantized(DType::Q4_0X8));
}

TEST(DType, GgmlIdsRoundTrip) {
  for (int t = 0; t < kDTypeCount; ++t) {
    const auto dt = static_cast<DType>(t);
    if (info(dt).ggml_type < 0) continue;
    EXPECT_EQ(dtype_from_ggml(info(dt).ggml_type), dt) << name(dt);
    EXPECT_EQ(dtype_from_name(name(dt)), dt);
  }
  EXPECT_FALSE(dtype_from_ggml(4).has_value());  // removed Q4_2
  EXPECT_FALSE(dtype_from_ggml(1000).has_value());
}

TEST(DType, PartialBlockIsAnError) {
  try {
    storage_bytes(DType::Q4_0, 33);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
  }
}

}  // namespace
}  // namespace metallic
