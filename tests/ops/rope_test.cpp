#include "metallic/ops/rope.h"

#include <gtest/gtest.h>

#include <cmath>

#include "metallic/ops/copy.h"
#include "metallic/ops/creation.h"
#include "test_support.h"

namespace metallic {
namespace {

using Case = test::DTypeCase;

constexpr auto case_name = test::dtype_case_name;

constexpr auto tolerance = test::dtype_tolerance;

// Naive double reference on a dense [B, S, H, D] copy: each pair rotates by pos * theta^(-2i/rot) /
// factor[i].
std::vector<double> reference(const std::vector<float>& x, const Shape& shape, RopeStyle style, double theta,
                              int64_t offset, int64_t rot, const std::vector<float>& factors) {
  const int64_t seq = shape[1], heads = shape[2], d = shape[3];
  if (rot == 0) rot = d;
  std::vector<double> r(x.begin(), x.end());
  for (int64_t row = 0; row < shape.numel() / d; ++row) {
    const double pos = static_cast<double>(offset + (row / heads) % seq);
    for (int64_t i = 0; i < rot / 2; ++i) {
      const double freq = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(rot)) /
                          (factors.empty() ? 1.0 : factors[i]);
      const int64_t a = style == RopeStyle::Interleaved ? 2 * i : i;
      const int64_t b = style == RopeStyle::Interleaved ? 2 * i + 1 : i + rot / 2;
      const double xa = x[row * d + a], xb = x[row * d + b];
      r[row * d + a] = xa * std::cos(pos * freq) - xb * std::sin(pos * freq);
      r[row * d + b] = xb * std::cos(pos * freq) + xa * std::sin(pos * freq);
    }
  }
  return r;
}

class Rope : public test::DeviceTest<Case> {
 protected:
  DType dtype() const { return GetParam().dtype; }
  std::pair<Tensor, std::vector<float>> input(const Shape& shape, uint32_t seed) {
    const Tensor t = cast(Tensor::from_vector(ctx, test::random_floats(shape.numel(), seed), shape), dtype());
    return {t, t.to_vector<float>()};
  }
};

TEST_P(Rope, BothStylesMatchDoubleReference) {
  struct C {
    Shape shape;
    int64_t rot;
    int64_t offset;
    float theta;
    bool factors;
  };
  const std::vector<C> cases = {
      {{2, 5, 3, 128}, 0, 0, 10000.f, false},     // full rotation
      {{1, 7, 4, 64}, 32, 3, 10000.f, false},     // partial rotary dims: the rest passes through
      {{2, 3, 2, 128}, 0, 2000, 500000.f, true},  // Llama 3: rope_freqs divisors, large theta
      {{1, 2, 3, 6}, 0, 1, 10000.f, false},       // head_dim not a multiple of the vector width
      {{1, 3, 1, 10}, 6, 5, 100.f, true},         // odd pair count, partial, factors
      {{1, 4, 2, 64}, 0, 30000, 10000.f, false},  // far positions: angles need accurate reduction
      {{1, 9, 2, 128}, 0, 32760, 1e6f, false},    // up to position 32768 with a long-context theta
  };
  uint32_t seed = 1;
  for (const C& c : cases)
    for (const RopeStyle style : {RopeStyle::Interleaved, RopeStyle::Neox}) {
      const auto [x, vx] = input(c.shape, ++seed);
      RopeOptions o{.style = style, .theta = c.theta, .position_offset = c.offset, .rotary_dims = c.rot};
      std::vector<float> vf;
      if (c.factors) {
        const int64_t half = (c.rot ? c.rot : c.shape[3]) / 2;
        vf = test::random_floats(static_cast<size_t>(half), ++seed, 1.f, 8.f);
        o.freq_factors = Tensor::from_vector(ctx, vf, {half});
      }
      const Tensor out = full(ctx, c.shape, NAN, dtype());
      rope(x, o, out);
      const double err = test::max_rel_error(out.to_vector<float>(),
                                             reference(vx, c.shape, style, c.theta, c.offset, c.rot, vf));
      EXPECT_TRUE(err <= tolerance(dtype())) << c.shape.to_string() << " rot " << c.rot << " style "
                                             << static_cast<int>(style) << " err " << err;
    }
}

TEST_P(Rope, InPlaceAndNonContiguousViews) {
  for (const RopeStyle style : {RopeStyle::Interleaved, RopeStyle::Neox}) {
    // In place, partial rotation: the pass-through half must survive untouched.
    const auto [x, vx] = input({2, 6, 4, 64}, 10);
    const RopeOptions o{.style = style, .position_offset = 7, .rotary_dims = 48};
    const std::vector<double> want = reference(vx, x.shape(), style, 10000.0, 7, 48, {});
    rope(x, o, x);
    double err = test::max_rel_error(x.to_vector<float>(), want);
    EXPECT_TRUE(err <= tolerance(dtype())) << "in place err " << err;
    // A [B, H, S, D] buffer permuted to [B, S, H, D], written into a permuted output.
    const auto [bhsd, vb] = input({2, 4, 9, 32}, 11);
    const Tensor xv = bhsd.permute({0, 2, 1, 3});
    const Tensor out = full(ctx, {2, 4, 9, 32}, NAN, dtype()).permute({0, 2, 1, 3});
    rope(xv, {.style = style}, out);
    const std::vector<double> want2 =
        reference(xv.contiguous().to_vector<float>(), xv.shape(), style, 10000.0, 0, 0, {});
    err = test::max_rel_error(out.to_vector<float>(), want2);
    EXPECT_TRUE(err <= tolerance(dtype())) << "permuted err " << err;
    // Odd element offset and a strided head_dim (every second element).
    const auto [wide, vw] = input({1, 3, 2, 65}, 12);
    const Tensor xo = wide.narrow(3, 1, 64);
    err = test::max_rel_error(
        rope(xo, {.style = style}).to_vector<float>(),
        reference(xo.contiguous().to_vector<float>(), xo.shape(), style, 10000.0, 0, 0, {}));
    EXPECT_TRUE(err <= tolerance(dtype())) << "offset err " << err;
    const Tensor xs = wide.slice(3, 0, 64, 2);
    err = test::max_rel_error(
        rope(xs, {.style = style, .position_offset = 2}).to_vector<float>(),
        reference(xs.contiguous().to_vector<float>(), xs.shape(), style, 10000.0, 2, 0, {}));
    EXPECT_TRUE(err <= tolerance(dtype())) << "strided err " << err;
  }
}

TEST_P(Rope, NanAndInfStayInTheirPair) {
  std::vector<float> v = test::random_floats(2 * 8, 20);
  v[2] = NAN;           // interleaved pair (2, 3) of position 0
  v[8 + 5] = INFINITY;  // pair (4, 5) of position 1
  const Tensor x = cast(Tensor::from_vector(ctx, v, {1, 2, 1, 8}), dtype());
  const auto got = rope(x, {}).to_vector<float>();
  for (int64_t j = 0; j < 16; ++j) {
    const bool poisoned = j == 2 || j == 3 || j == 12 || j == 13;
    EXPECT_EQ(std::isfinite(got[j]), !poisoned) << j << ": " << got[j];
  }
}

TEST_P(Rope, ErrorsNameTheProblem) {
  const auto [x, vx] = input({1, 2, 2, 8}, 30);
  EXPECT_METALLIC_ERROR(rope(x.select(0, 0), {}), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(rope(x, {.rotary_dims = 5}), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(rope(x, {.rotary_dims = 10}), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(rope(x, {.theta = -1.f}), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(rope(x, {.freq_factors = ones(ctx, {3})}), ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(rope(x, {.freq_factors = ones(ctx, {4}, DType::F64)}), ErrorCode::DTypeMismatch);
  EXPECT_METALLIC_ERROR(rope(x, {}, zeros(ctx, {1, 2, 2, 6}, dtype())), ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(rope(zeros(ctx, {1, 1, 1, 4}, DType::I32), {}), ErrorCode::NotSupported);
}

INSTANTIATE_TEST_SUITE_P(Cpu, Rope, ::testing::ValuesIn(test::float_cases(Device::cpu())), case_name);
INSTANTIATE_TEST_SUITE_P(Cuda, Rope, ::testing::ValuesIn(test::float_cases(Device::cuda())), case_name);

}  // namespace
}  // namespace metallic
