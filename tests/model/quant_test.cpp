#include "metallic/model/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "metallic/core/error.h"
#include "metallic/core/half.h"
#include "metallic/model/gguf.h"
#include "metallic/model/quant_blocks.h"
#include "test_support.h"

namespace metallic::quant {
namespace {

std::vector<float> decode(DType dt, const void* src, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n), std::nanf(""));  // poisoned: unwritten outputs fail
  dequantize(dt, src, out.data(), n);
  return out;
}

std::vector<float> normal_data(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

// --- half and bfloat16 ---------------------------------------------------------------------------------

TEST(Half, KnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(0.1f), 0x2e66);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.996f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // the tie rounds to the even neighbour, infinity
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xfc00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);         // tie between 0 and 2^-24: even is 0
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);         // above the tie
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);         // 1.5 ulp: tie to even 2
  EXPECT_EQ(f32_to_f16(std::ldexp(1023.0f, -24)), 0x03ff);      // largest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(2047.0f, -25)), 0x0400);      // rounds up into the normals
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie, even mantissa kept
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(3.0f, -11)), 0x3c02);  // tie, odd mantissa rounds up
  const uint16_t nan = f32_to_f16(std::nanf(""));
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0xfc00), -INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
}

TEST(Half, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), h) << std::hex << h;
  }
}

#if defined(__FLT16_MAX__)
// The compiler's own _Float16 conversion is an independent round-to-nearest-even reference.
TEST(Half, MatchesCompilerFloat16) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 2000000; ++i) {
    uint32_t b = bits(rng);
    if (i % 2) b = (b & 0x87ffffffu) | 0x30000000u;  // half of them near the half range
    const float f = bits_float(b);
    if (std::isnan(f)) continue;
    const _Float16 ref = static_cast<_Float16>(f);
    uint16_t ref_bits;
    std::memcpy(&ref_bits, &ref, 2);
    ASSERT_EQ(f32_to_f16(f), ref_bits) << std::hex << b;
  }
}
#endif

TEST(BFloat16, KnownValues) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(bits_float(0x3f808000u)), 0x3f80);  // tie, even kept
  EXPECT_EQ(f32_to_bf16(bits_float(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(bits_float(0x3f808001u)), 0x3f81);
  EXPECT_EQ(f32_to_bf16(bits_float(0x00018000u)), 0x0002);  // subnormal, rounded not flushed
  EXPECT_EQ(f32_to_bf16(bits_float(0x7f7fffffu)), 0x7f80);  // FLT_MAX rounds to infinity
  EXPECT_EQ(f32_to_bf16(-INFINITY), 0xff80);
  const uint16_t nan =
      f32_to_bf16(bits_float(0x7f800001u));  // a signalling NaN whose payload is all low bits
  EXPECT_EQ(nan & 0x7f80, 0x7f80);
  EXPECT_NE(nan & 0x007f, 0);
  EXPECT_EQ(bf16_to_f32(0xc040), -3.0f);
}

// --- hand-built blocks -----------------------------------------------------------------------------------

TEST(GroupBlocks, SameValuesScalesInFront) {
  for (const DType base : {DType::Q4_0, DType::Q8_0}) {
    SCOPED_TRACE(std::string(name(base)));
    const DType grouped = *grouped_dtype(base);
    const int64_t n = 256 * 3;
    std::vector<float> x(static_cast<size_t>(n));
    std::mt19937 rng(5);
    for (float& v : x) v = std::uniform_real_distribution<float>(-2.f, 2.f)(rng);
    std::vector<uint8_t> blocks(static_cast<size_t>(storage_bytes(base, n)));
    std::vector<uint8_t> groups(static_cast<size_t>(storage_bytes(grouped, n)));
    quantize(base, x.data(), blocks.data(), n);
    group_blocks(base, blocks.data(), groups.data(), n);
    EXPECT_EQ(groups.size(), blocks.size());
    // Group 1, block 5 (block 13 of the run): its scale is the group's sixth f16, its quants follow the
    // group's 16 bytes of scales at 16 + 5 * (quant bytes).
    const int64_t bb = info(base).block_bytes, qb = bb - 2, gb = info(grouped).block_bytes;
    const uint8_t* b13 = blocks.data() + 13 * bb;
    const uint8_t* g1 = groups.data() + gb;
    EXPECT_EQ(std::memcmp(g1 + 2 * 5, b13, 2), 0);
    EXPECT_EQ(std::memcmp(g1 + 16 + 5 * qb, b13 + 2, static_cast<size_t>(qb)), 0);
    // Every value decodes bit for bit alike, and quantize() to the grouped type gives the same bytes.
    const auto want = decode(base, blocks.data(), n), got = decode(grouped, groups.data(), n);
    EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0);
    std::vector<uint8_t> direct(groups.size());
    quantize(grouped, x.data(), direct.data(), n);
    EXPECT_EQ(direct, groups);
  }
  std::vector<uint8_t> buf(4096);
  EXPECT_FALSE(grouped_dtype(DType::Q4_K).has_value());
  EXPECT_METALLIC_ERROR(group_blocks(DType::Q4_K, buf.data(), buf.data() + 2048, 256),
                        ErrorCode::NotSupported);
  EXPECT_METALLIC_ERROR(group_blocks(DType::Q4_0, buf.data(), buf.data() + 2048, 96),
                        ErrorCode::InvalidArgument);
}

TEST(Dequantize, Q8_0ByHand) {
  block_q8_0 b{};
  b.d = 0x3800;  // 0.5
  const int8_t qs[5] = {-128, -1, 0, 1, 127};
  std::memcpy(b.qs, qs, 5);
  b.qs[31] = 10;
  const auto y = decode(DType::Q8_0, &b, 32);
  EXPECT_EQ(y[0], -64.0f);
  EXPECT_EQ(y[1], -0.5f);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_EQ(y[3], 0.5f);
  EXPECT_EQ(y[4], 63.5f);
  EXPECT_EQ(y[31], 5.0f);
}

TEST(Dequantize, Q4_0AndQ4_1ByHand) {
  block_q4_0 a{};
  a.d = 0x4000;  // 2
  a.qs[0] = 0x9F;
  a.qs[1] = 0x08;
  std::vector<float> y = decode(DType::Q4_0, &a, 32);
  EXPECT_EQ(y[0], 14.0f);    // (15 - 8) * 2
  EXPECT_EQ(y[16], 2.0f);    // (9 - 8) * 2
  EXPECT_EQ(y[1], 0.0f);     // (8 - 8) * 2
  EXPECT_EQ(y[17], -16.0f);  // (0 - 8) * 2
  EXPECT_EQ(y[5], -16.0f);

  block_q4_1 b{};
  b.d = 0x3c00;  // 1
  b.m = 0xbc00;  // -1
  b.qs[0] = 0x5A;
  y = decode(DType::Q4_1, &b, 32);
  EXPECT_EQ(y[0], 9.0f);
  EXPECT_EQ(y[16], 4.0f);
  EXPECT_EQ(y[1], -1.0f);
}

TEST(Dequantize, Q5ByHand) {
  block_q5_0 a{};
  a.d = 0x3c00;
  a.qh[0] = 0x01;  // fifth bit of element 0
  a.qh[2] = 0x01;  // fifth bit of element 16
  a.qh[3] = 0x80;  // fifth bit of element 31
  a.qs[0] = 0x21;
  a.qs[15] = 0xF0;
  std::vector<float> y = decode(DType::Q5_0, &a, 32);
  EXPECT_EQ(y[0], 1.0f);    // (1 | 16) - 16
  EXPECT_EQ(y[16], 2.0f);   // (2 | 16) - 16
  EXPECT_EQ(y[1], -16.0f);  // 0 - 16
  EXPECT_EQ(y[31], 15.0f);  // (15 | 16) - 16
  EXPECT_EQ(y[15], -16.0f);

  block_q5_1 b{};
  b.d = 0x3800;    // 0.5
  b.m = 0x4000;    // 2
  b.qh[0] = 0x02;  // element 1
  b.qs[1] = 0x34;
  y = decode(DType::Q5_1, &b, 32);
  EXPECT_EQ(y[1], 0.5f * 20 + 2);  // 4 | 16
  EXPECT_EQ(y[17], 0.5f * 3 + 2);
  EXPECT_EQ(y[0], 2.0f);
}

TEST(Dequantize, Q4_KByHand) {
  block_q4_K b{};
  b.d = 0x3c00;     // 1
  b.dmin = 0x3800;  // 0.5
  b.scales[0] = 3;  // group 0 scale
  b.scales[4] = 2;  // group 0 min
  // Group 5: low bits of scale and min in byte 9, top bits in the spare high bits of bytes 1 and 5.
  b.scales[9] = 0x21;
  b.scales[1] = 0x40;
  b.scales[5] = 0x80;
  b.qs[0] = 0x07;
  b.qs[64] = 0x50;
  uint8_t sc, m;
  get_scale_min_k4(5, b.scales, sc, m);
  EXPECT_EQ(sc, 17);
  EXPECT_EQ(m, 34);
  const auto y = decode(DType::Q4_K, &b, 256);
  EXPECT_EQ(y[0], 1.0f * 3 * 7 - 0.5f * 2);      // group 0, low nibble
  EXPECT_EQ(y[1], -1.0f);                        // code 0 still subtracts the min
  EXPECT_EQ(y[32], 0.0f);                        // group 1: scale 0 (byte 1 & 63), min 0
  EXPECT_EQ(y[160], 1.0f * 17 * 5 - 0.5f * 34);  // group 5 = high nibbles of bytes 64..95
  EXPECT_EQ(y[128], 0.0f);
}

TEST(Dequantize, Q5_KByHand) {
  block_q5_K b{};
  b.d = 0x3c00;
  b.scales[0] = 1;
  b.scales[1] = 2;
  b.scales[2] = 1;
  b.qs[0] = 0x43;
  b.qh[0] = 0x03;  // fifth bits of elements 0 (group 0) and 32 (group 1)
  b.qs[32] = 0x01;
  const auto y = decode(DType::Q5_K, &b, 256);
  EXPECT_EQ(y[0], 19.0f);       // 3 + 16
  EXPECT_EQ(y[32], 2.0f * 20);  // (4 + 16) * 2
  EXPECT_EQ(y[64], 1.0f);       // group 2: low nibbles of bytes 32..63, fifth bit 2 of qh clear
  EXPECT_EQ(y[65], 0.0f);
}

TEST(Dequantize, Q6_KByHand) {
  block_q6_K b{};
  b.d = 0x3800;  // 0.5
  b.scales[0] = 2;
  b.scales[2] = -3;
  b.scales[4] = 1;
  b.scales[12] = 4;
  b.ql[0] = 0x05;
  b.qh[0] = 0x02;  // top bits of element 0 = 2 -> code 5 | 32
  b.ql[72] = 0xA0;
  b.qh[40] = 0x30;
  const auto y = decode(DType::Q6_K, &b, 256);
  EXPECT_EQ(y[0], 0.5f * 2 * 5);
  EXPECT_EQ(y[32], 0.5f * -3 * -32);
  EXPECT_EQ(y[64], 0.5f * 1 * -32);
  EXPECT_EQ(y[200], 0.5f * 4 * 26);  // second half, third quarter, l = 8: (10 | 48) - 32
  EXPECT_EQ(y[16], 0.0f);            // group 1 has scale 0
}

TEST(Dequantize, Q2_KAndQ3_KByHand) {
  block_q2_K a{};
  a.d = 0x3c00;
  a.dmin = 0x3c00;
  a.scales[0] = 0x12;  // scale 2, min 1
  a.scales[1] = 0x01;
  a.scales[2] = 0x23;
  a.qs[0] = 0x07;
  a.qs[16] = 0x02;
  std::vector<float> y = decode(DType::Q2_K, &a, 256);
  EXPECT_EQ(y[0], 2.0f * 3 - 1);   // code 3
  EXPECT_EQ(y[16], 2.0f);          // group 1 reads qs[16]
  EXPECT_EQ(y[32], 3.0f * 1 - 2);  // group 2: bits 2-3 of qs[0]
  EXPECT_EQ(y[1], -1.0f);

  block_q3_K b{};
  b.d = 0x3c00;
  b.scales[0] = 0x01;  // group 0: low bits 1,
  b.scales[8] = 0x02;  // high bits 2 -> 33 - 32 = 1
  b.hmask[0] = 0x01;
  b.qs[0] = 0x03;
  y = decode(DType::Q3_K, &b, 256);
  EXPECT_EQ(y[0], 3.0f);     // high bit set: no offset
  EXPECT_EQ(y[1], -4.0f);    // high bit clear: 0 - 4
  EXPECT_EQ(y[16], 128.0f);  // group 1 scale 0 - 32 = -32, code -4
}

TEST(Dequantize, DenseTypes) {
  const uint16_t h[3] = {0x3c00, 0xc100, 0x0001};
  const auto y = decode(DType::F16, h, 3);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -2.5f);
  EXPECT_EQ(y[2], std::ldexp(1.0f, -24));
  const uint16_t b[2] = {0x4049, 0xbf80};
  const auto z = decode(DType::BF16, b, 2);
  EXPECT_EQ(z[0], bits_float(0x40490000u));
  EXPECT_EQ(z[1], -1.0f);
}

TEST(Dequantize, RejectsBadArguments) {
  std::vector<uint8_t> buf(1024);
  std::vector<float> out(1024);
  try {
    dequantize(DType::Q4_K, buf.data(), out.data(), 100);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
  }
  try {
    dequantize(DType::IQ2_XXS, buf.data(), out.data(), 256);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::NotSupported);
    EXPECT_NE(std::string(e.what()).find("iq2_xxs"), std::string::npos) << e.what();
  }
  try {
    quantize(DType::Q5_K, out.data(), buf.data(), 256);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::NotSupported);
  }
  EXPECT_THROW(quantize(DType::Q8_0, out.data(), buf.data(), 33), Error);
}

// --- quantizers ------------------------------------------------------------------------------------------

TEST(Quantize, Q4_0ByHand) {
  // x = -16..15: the largest magnitude is -16, so d = -16 / -8 = 2 and code = trunc(x / 2 + 8.5), capped
  // at 15.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  block_q4_0 b;
  quantize(DType::Q4_0, x.data(), &b, 32);
  EXPECT_EQ(b.d, 0x4000);
  const uint8_t expected[16] = {0x80, 0x91, 0x91, 0xA2, 0xA2, 0xB3, 0xB3, 0xC4,
                                0xC4, 0xD5, 0xD5, 0xE6, 0xE6, 0xF7, 0xF7, 0xF8};
  EXPECT_EQ(std::memcmp(b.qs, expected, 16), 0);
  // A positive extreme gives a negative scale: d = 16 / -8 = -2.
  for (float& v : x) v = -v;
  quantize(DType::Q4_0, x.data(), &b, 32);
  EXPECT_EQ(b.d, 0xc000);
}

TEST(Quantize, Q8_0ByHand) {
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;
  x[1] = -63.5f;  // rounds half away from zero
  x[2] = 0.49f;
  x[3] = -127.0f;
  block_q8_0 b;
  quantize(DType::Q8_0, x.data(), &b, 32);
  EXPECT_EQ(b.d, 0x3c00);
  EXPECT_EQ(b.qs[0], 127);
  EXPECT_EQ(b.qs[1], -64);
  EXPECT_EQ(b.qs[2], 0);
  EXPECT_EQ(b.qs[3], -127);
  // All zeros: d = 0 and every code 0.
  std::vector<float> zeros(32, 0.0f);
  quantize(DType::Q8_0, zeros.data(), &b, 32);
  EXPECT_EQ(b.d, 0);
  for (int8_t q : b.qs) EXPECT_EQ(q, 0);
}

TEST(Quantize, Q8_0AndQ4_0ErrorBounds) {
  const int64_t n = 32 * 512;
  const std::vector<float> x = normal_data(static_cast<size_t>(n), 42);
  std::vector<block_q8_0> q8(static_cast<size_t>(n / 32));
  quantize(DType::Q8_0, x.data(), q8.data(), n);
  const auto y8 = decode(DType::Q8_0, q8.data(), n);
  std::vector<block_q4_0> q4(static_cast<size_t>(n / 32));
  quantize(DType::Q4_0, x.data(), q4.data(), n);
  const auto y4 = decode(DType::Q4_0, q4.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float d8 = std::fabs(f16_to_f32(q8[static_cast<size_t>(b)].d));
    const float d4 = std::fabs(f16_to_f32(q4[static_cast<size_t>(b)].d));
    for (int64_t j = b * 32; j < b * 32 + 32; ++j) {
      const auto i = static_cast<size_t>(j);
      // Half a step, plus the step's own half-precision rounding (2^-11 relative) times a code of up to 127.
      ASSERT_TRUE(std::fabs(y8[i] - x[i]) <= d8 * (0.5f + 127.0f / 2048.0f)) << j << " seed 42";
      // Codes cover [-8, 7]: the value of largest magnitude lands on -8 exactly, the other extreme is
      // clipped at 7 (one step), plus the scale's rounding times a code of up to 8.
      ASSERT_TRUE(std::fabs(y4[i] - x[i]) <= d4 * (1.0f + 8.0f / 2048.0f)) << j << " seed 42";
    }
  }
}

double relative_rms_error(DType dt, const std::vector<float>& x) {
  const auto n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(static_cast<size_t>(storage_bytes(dt, n)));
  quantize(dt, x.data(), q.data(), n);
  const auto y = decode(dt, q.data(), n);
  double err = 0, ref = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
    ref += double(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

TEST(Quantize, KQuantErrorBounds) {
  const std::vector<float> x = normal_data(256 * 64, 1234);
  // A 4-bit code with an affine per-32 scale has a step of about range/15 ~ 5.5 sigma / 15, so an RMS error
  // near 0.37 / sqrt(12) ~ 0.1 of sigma; the least-squares search brings it lower. 6 bits: ~4x lower.
  const double e4 = relative_rms_error(DType::Q4_K, x);
  const double e6 = relative_rms_error(DType::Q6_K, x);
  EXPECT_TRUE(e4 < 0.09) << e4;   // measured 0.071 (seed 1234)
  EXPECT_TRUE(e4 > 0.01) << e4;   // a lossless result would mean the codes are not 4-bit
  EXPECT_TRUE(e6 < 0.025) << e6;  // measured 0.018
  EXPECT_TRUE(e6 < e4 / 3) << e6 << " vs " << e4;
  // A block of zeros stays exactly zero.
  const std::vector<float> zeros(256, 0.0f);
  for (DType dt : {DType::Q4_K, DType::Q6_K}) {
    std::vector<uint8_t> q(static_cast<size_t>(storage_bytes(dt, 256)), 0xAB);
    quantize(dt, zeros.data(), q.data(), 256);
    for (float v : decode(dt, q.data(), 256)) ASSERT_EQ(v, 0.0f) << name(dt);
  }
}

TEST(Quantize, DenseRoundTrip) {
  const std::vector<float> x = {1.0f, -2.5f, 0.1f, 65504.0f};
  std::vector<uint16_t> h(4);
  quantize(DType::F16, x.data(), h.data(), 4);
  EXPECT_EQ(h[2], 0x2e66);
  quantize(DType::BF16, x.data(), h.data(), 4);
  EXPECT_EQ(h[0], 0x3f80);
  EXPECT_EQ(h[1], 0xc020);
}

// The Q8_0 fixture was produced by ggml's reference quantizer from the same weights as its F32 twin, so
// quantizing the F32 tensors must reproduce its bytes exactly.
TEST(Quantize, Q8_0MatchesFixtureBytes) {
  const auto f32 = gguf::File::open(test::shared_path("models/qwen2-tiny/qwen2-tiny-tied-f32.gguf").string());
  const auto q8 = gguf::File::open(test::shared_path("models/qwen2-tiny/qwen2-tiny-tied-q8_0.gguf").string());
  int compared = 0;
  for (const gguf::TensorInfo& t : q8.tensors()) {
    if (t.dtype != DType::Q8_0) continue;
    const gguf::TensorInfo& src = f32.tensor(t.name);
    ASSERT_EQ(src.dtype, DType::F32);
    std::vector<float> x(static_cast<size_t>(src.elements()));
    std::memcpy(x.data(), src.data, src.bytes);
    std::vector<uint8_t> mine(t.bytes);
    quantize(DType::Q8_0, x.data(), mine.data(), src.elements());
    EXPECT_EQ(std::memcmp(mine.data(), t.data, t.bytes), 0) << t.name;
    ++compared;
  }
  EXPECT_EQ(compared, 1 + 2 * 7);  // token_embd and seven matrices per layer
}

}  // namespace
}  // namespace metallic::quant
