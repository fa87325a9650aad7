#include "metallic/ops/elementwise.h"

#include <gtest/gtest.h>

#include <cmath>

#include "metallic/ops/copy.h"
#include "metallic/ops/creation.h"
#include "test_support.h"

namespace metallic {
namespace {

using Case = test::DTypeCase;

constexpr auto case_name = test::dtype_case_name;

// Relative tolerance of one rounding to `dtype` (the kernels compute in f32 and round once).
double tolerance(DType dtype) {
  switch (dtype) {
    case DType::BF16: return 8e-3;
    case DType::F16: return 1e-3;
    default: return 1e-6;
  }
}

// Naive double reference: index the inputs by broadcasting rules directly.
std::vector<double> reference(BinaryOp op, const std::vector<float>& a, const Shape& sa,
                              const std::vector<float>& b, const Shape& sb, const Shape& out) {
  std::vector<double> r(static_cast<size_t>(out.numel()));
  for (int64_t i = 0; i < out.numel(); ++i) {
    int64_t rest = i, ia = 0, ib = 0, ma = 1, mb = 1;
    for (int d = out.rank() - 1; d >= 0; --d) {
      const int64_t idx = rest % out[d];
      rest /= out[d];
      const int da = d - (out.rank() - sa.rank()), db = d - (out.rank() - sb.rank());
      if (da >= 0) {
        ia += (sa[da] == 1 ? 0 : idx) * ma;
        ma *= sa[da];
      }
      if (db >= 0) {
        ib += (sb[db] == 1 ? 0 : idx) * mb;
        mb *= sb[db];
      }
    }
    const double x = a[static_cast<size_t>(ia)], y = b[static_cast<size_t>(ib)];
    r[static_cast<size_t>(i)] = op == BinaryOp::Add   ? x + y
                                : op == BinaryOp::Sub ? x - y
                                : op == BinaryOp::Mul ? x * y
                                                      : x / y;
  }
  return r;
}

class Elementwise : public test::DeviceTest<Case> {
 protected:
  // Seeded values stored in the dtype under test; returns the tensor and the values as stored.
  std::pair<Tensor, std::vector<float>> input(const Shape& shape, uint32_t seed, float lo = -2.f,
                                              float hi = 2.f) {
    const Tensor t = cast(Tensor::from_vector(ctx, test::random_floats(shape.numel(), seed, lo, hi), shape),
                          GetParam().dtype);
    return {t, t.to_vector<float>()};
  }
};

TEST_P(Elementwise, BroadcastingMatchesDoubleReference) {
  // Equal dense shapes take the packed kernel (whole 16-byte packs, then a tail; 3 x 7001 spans several
  // blocks), the others the strided one.
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{257}, {257}}, {{4100}, {4100}}, {{3, 7001}, {3, 7001}}, {{3, 1, 5}, {4, 1}},
      {{1}, {2, 3}},  {{2, 3, 4}, {4}}, {{7, 1}, {1, 9}},       {{}, {3}}};
  for (const BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div}) {
    uint32_t seed = 100;
    for (const auto& [sa, sb] : shapes) {
      const auto [a, va] = input(sa, ++seed);
      const auto [b, vb] = input(sb, ++seed, 0.5f, 2.f);  // away from zero for Div
      const Tensor out = binary(op, a, b);
      const Shape so = broadcast_shapes(sa, sb, "test");
      EXPECT_EQ(out.shape(), so);
      const double err = test::max_rel_error(out.to_vector<float>(), reference(op, va, sa, vb, sb, so), 1e-3);
      EXPECT_TRUE(err <= tolerance(GetParam().dtype))
          << "op " << static_cast<int>(op) << " " << sa.to_string() << " x " << sb.to_string() << " err "
          << err;
    }
  }
}

TEST_P(Elementwise, ViewsWithOffsetsAndStrides) {
  const auto [base, vbase] = input({4, 6, 5}, 11);
  // Non-contiguous operands: a transposed slice with an offset, and a strided slice.
  const Tensor a = base.narrow(0, 1, 3).transpose(1, 2);    // [3,5,6]
  const Tensor b = base.slice(0, 0, 4, 2).narrow(1, 2, 1);  // [2,1,5]: rows 0 and 2, column 2
  const Tensor bb = b.select(0, 1).transpose(0, 1);         // [5,1] = base[2, 2, :], broadcast over k
  const Tensor out_base = full(ctx, {3, 5, 8}, NAN, GetParam().dtype);  // poisoned, written through a view
  const Tensor out = out_base.narrow(2, 1, 6);
  binary(BinaryOp::Mul, a, bb, out);
  const auto got = out_base.to_vector<float>();
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 5; ++j)
      for (int64_t k = 0; k < 8; ++k) {
        const float g = got[static_cast<size_t>((i * 5 + j) * 8 + k)];
        if (k == 0 || k == 7) {
          EXPECT_TRUE(std::isnan(g)) << "wrote outside the view at " << i << "," << j << "," << k;
          continue;
        }
        const double x = vbase[static_cast<size_t>(((1 + i) * 6 + (k - 1)) * 5 + j)];
        const double y = vbase[static_cast<size_t>((2 * 6 + 2) * 5 + j)];
        EXPECT_TRUE(std::abs(g - x * y) <= tolerance(GetParam().dtype) * std::max(1.0, std::abs(x * y)))
            << i << "," << j << "," << k << ": " << g << " vs " << x * y;
      }
}

TEST_P(Elementwise, ScalarsAndOperators) {
  const auto [a, va] = input({3, 7}, 21, 0.5f, 2.f);
  const std::vector<float> s1 = ((a + 1.5) * 2.0 - a / 4.0).to_vector<float>();
  const std::vector<float> s2 = (1.0 / a).to_vector<float>();
  const std::vector<float> s3 = (-a).to_vector<float>();
  const std::vector<float> s4 = (3.0 - a).to_vector<float>();
  const double tol = 3 * tolerance(GetParam().dtype);
  for (size_t i = 0; i < va.size(); ++i) {
    const double x = va[i];
    EXPECT_TRUE(std::abs(s1[i] - ((x + 1.5) * 2 - x / 4)) <= tol * std::abs((x + 1.5) * 2)) << i;
    EXPECT_TRUE(std::abs(s2[i] - 1 / x) <= tol * std::abs(1 / x)) << i;
    EXPECT_EQ(s3[i], static_cast<float>(-x)) << i;
    EXPECT_TRUE(std::abs(s4[i] - (3 - x)) <= tol * 3) << i;
  }
}

TEST_P(Elementwise, EmptyTensorsAndNaN) {
  const Tensor e = zeros(ctx, {0, 4}, GetParam().dtype);
  EXPECT_EQ(add(e, ones(ctx, {4}, GetParam().dtype)).shape(), Shape({0, 4}));
  const Tensor n = full(ctx, {3}, NAN, GetParam().dtype);
  for (float v : (n * 0.0).to_vector<float>()) EXPECT_TRUE(std::isnan(v));
  for (float v : (n + n).to_vector<float>()) EXPECT_TRUE(std::isnan(v));
  const Tensor inf = full(ctx, {2}, INFINITY, GetParam().dtype);
  for (float v : (inf - inf).to_vector<float>()) EXPECT_TRUE(std::isnan(v));
}

TEST_P(Elementwise, ErrorsCarryTheirCodes) {
  const auto [a, va] = input({2, 3}, 31);
  const Tensor other = zeros(ctx, {2, 3}, GetParam().dtype == DType::F32 ? DType::F16 : DType::F32);
  EXPECT_METALLIC_ERROR(add(a, other), ErrorCode::DTypeMismatch);
  EXPECT_METALLIC_ERROR(add(a, zeros(ctx, {4}, GetParam().dtype)), ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(binary(BinaryOp::Add, a, a, zeros(ctx, {3, 2}, GetParam().dtype)),
                        ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(add(a, Tensor()), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(div(zeros(ctx, {2}, DType::I32), zeros(ctx, {2}, DType::I32)),
                        ErrorCode::NotSupported);
  EXPECT_METALLIC_ERROR(add(Tensor::empty(ctx, {32}, DType::Q8_0), Tensor::empty(ctx, {32}, DType::Q8_0)),
                        ErrorCode::NotSupported);
  if (GetParam().device.is_cuda()) {
    const auto host = Context::create(Device::cpu());
    EXPECT_METALLIC_ERROR(add(a, zeros(host, {2, 3}, GetParam().dtype)), ErrorCode::Device);
  }
}

TEST_P(Elementwise, CastsRoundToNearestEven) {
  // Values chosen by hand: exactly representable in f32; their f16/bf16 roundings are worked out below.
  const std::vector<float> v = {1.0f,
                                1.00048828125f /* 1 + 2^-11: f16 tie -> 1 */,
                                1.00146484375f /* 1 + 3*2^-11: f16 tie -> 1 + 2^-9 */,
                                1.00390625f /* 1 + 2^-8: bf16 tie -> 1 */,
                                65520.f /* f16 overflow */,
                                -0.0f,
                                5.9604644775390625e-8f /* smallest f16 subnormal */};
  const Tensor t = Tensor::from_vector(ctx, v, {7});
  const std::vector<float> h = cast(t, DType::F16).to_vector<float>();
  EXPECT_EQ(h[1], 1.0f);
  EXPECT_EQ(h[2], 1.001953125f);
  EXPECT_TRUE(std::isinf(h[4]));
  EXPECT_TRUE(std::signbit(h[5]));
  EXPECT_EQ(h[6], 5.9604644775390625e-8f);
  const std::vector<float> b = cast(t, DType::BF16).to_vector<float>();
  EXPECT_EQ(b[3], 1.0f);
  EXPECT_EQ(b[4], 65536.f);
  const std::vector<int32_t> i =
      cast(Tensor::from_vector(ctx, std::vector<float>{-2.7f, 2.7f, NAN, 3e9f}, {4}), DType::I32)
          .to_vector<int32_t>();
  EXPECT_EQ(i, (std::vector<int32_t>{-2, 2, 0, 2147483647}));
  // A cast round trip through the dtype under test is the identity on values it stores exactly.
  const auto [x, vx] = input({65}, 41);
  EXPECT_EQ(cast(cast(x, DType::F32), GetParam().dtype).to_vector<float>(), vx);
}

TEST_P(Elementwise, DenseCopiesOfAnyLength) {
  // Lengths around the 16-byte packs and a block's share, into views that start on a 16-byte boundary (the
  // packed path) or one element past it (the element path), between sentinels that must stay untouched.
  const DType dt = GetParam().dtype;
  const auto host = Context::create(Device::cpu());
  for (const int64_t n : {1, 7, 8, 9, 1023, 4100, 70001}) {
    const auto [x, vx] = input({n}, static_cast<uint32_t>(60 + n), -300.f, 300.f);
    for (const int64_t start : {int64_t{0}, int64_t{1}, int64_t{8}}) {
      const Tensor buf = full(ctx, {start + n + 9}, 7.0, dt);
      copy(x, buf.narrow(0, start, n));
      const std::vector<float> got = buf.to_vector<float>();
      for (int64_t i = 0; i < start + n + 9; ++i) {
        const float want = i < start || i >= start + n ? 7.f : vx[static_cast<size_t>(i - start)];
        ASSERT_EQ(got[static_cast<size_t>(i)], want) << "n " << n << " start " << start << " at " << i;
      }
    }
    const std::vector<double> wide = cast(x, DType::F64).to_vector<double>();
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(wide[static_cast<size_t>(i)], vx[static_cast<size_t>(i)]) << i;
    // Narrowing and integer casts agree with the host's conversion element for element.
    const Tensor on_host = x.to(host);
    for (const DType to : {DType::F16, DType::BF16, DType::I32, DType::I8, DType::U8}) {
      const std::vector<double> got = cast(cast(x, to), DType::F64).to_vector<double>();
      const std::vector<double> want = cast(cast(on_host, to), DType::F64).to_vector<double>();
      ASSERT_EQ(got, want) << "n " << n << " to " << name(to);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cpu, Elementwise, ::testing::ValuesIn(test::float_cases(Device::cpu())), case_name);
INSTANTIATE_TEST_SUITE_P(Cuda, Elementwise, ::testing::ValuesIn(test::float_cases(Device::cuda())),
                         case_name);

}  // namespace
}  // namespace metallic
