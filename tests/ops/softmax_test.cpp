#include "metallic/ops/softmax.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "metallic/ops/copy.h"
#include "metallic/ops/creation.h"
#include "test_support.h"

namespace metallic {
namespace {

using Case = test::DTypeCase;

constexpr auto case_name = test::dtype_case_name;

constexpr auto tolerance = test::dtype_tolerance;

// Naive double reference over rows of sk values; row r is query r % sq. Masked: 0 (softmax), -inf (log).
std::vector<double> reference(const std::vector<float>& x, int64_t sq, int64_t sk, const SoftmaxOptions& o,
                              bool log) {
  const double inf = INFINITY;
  std::vector<double> r(x.size());
  for (size_t row = 0; row < x.size() / static_cast<size_t>(sk); ++row) {
    const int64_t i = static_cast<int64_t>(row) % sq;
    auto visible = [&](int64_t j) { return !o.causal || j <= i + o.query_offset; };
    double m = -inf;
    for (int64_t j = 0; j < sk; ++j)
      if (visible(j)) m = std::max(m, double{o.scale} * x[row * sk + j]);
    bool any_nan = false;
    double sum = 0;
    for (int64_t j = 0; j < sk; ++j)
      if (visible(j)) {
        const double e = double{o.scale} * x[row * sk + j];
        any_nan = any_nan || std::isnan(e);
        sum += std::exp(e - m);
      }
    for (int64_t j = 0; j < sk; ++j) {
      const double e = double{o.scale} * x[row * sk + j];
      if (!visible(j))
        r[row * sk + j] = log ? -inf : 0.0;
      else if (any_nan)
        r[row * sk + j] = NAN;
      else
        r[row * sk + j] = log ? e - m - std::log(sum) : std::exp(e - m) / sum;
    }
  }
  return r;
}

using test::nonfinite_error;

class Softmax : public test::DeviceTest<Case> {
 protected:
  DType dtype() const { return GetParam().dtype; }
  std::pair<Tensor, std::vector<float>> input(const Shape& shape, uint32_t seed, float lo = -4.f,
                                              float hi = 4.f) {
    const Tensor t =
        cast(Tensor::from_vector(ctx, test::random_floats(shape.numel(), seed, lo, hi), shape), dtype());
    return {t, t.to_vector<float>()};
  }
  // Runs softmax or log_softmax into a poisoned output and returns the error against the reference.
  double run(const Tensor& x, const std::vector<float>& vx, const SoftmaxOptions& o, bool log) {
    const int64_t sk = x.dim(-1), sq = x.rank() >= 2 ? x.dim(-2) : 1;
    const Tensor out = full(ctx, x.shape(), NAN, dtype());
    if (log)
      log_softmax(x, o, out);
    else
      softmax(x, o, out);
    return nonfinite_error(out.to_vector<float>(), reference(vx, sq, sk, o, log), log ? 1.0 : 1e-3);
  }
};

TEST_P(Softmax, MatchesDoubleReference) {
  const std::vector<Shape> shapes = {{1},          {1, 1},     {3, 3},    {4, 257},
                                     {2, 3, 4096}, {2, 40000}, {2, 5000}, {5, 3000}};
  uint32_t seed = 1;
  for (const Shape& shape : shapes) {
    const auto [x, vx] = input(shape, ++seed);
    for (const float scale : {1.0f, 0.125f, -0.5f})  // a negative scale turns the max into a min
      for (const bool log : {false, true}) {
        const double err = run(x, vx, {.scale = scale}, log);
        EXPECT_TRUE(err <= tolerance(dtype()))
            << shape.to_string() << " scale " << scale << " log " << log << " err " << err;
      }
  }
}

TEST_P(Softmax, CausalMaskWithQueryOffset) {
  struct C {
    Shape shape;
    int64_t offset;
  };
  // Prefill (offset 0), chunked prefill against a cache (offset 4), decode (one query, offset = cache
  // length), and a negative offset whose first rows are fully masked.
  const std::vector<C> cases = {
      {{2, 5, 7}, 0}, {{3, 4, 9}, 4}, {{2, 1, 300}, 299}, {{1, 1, 4096}, 1000}, {{6, 7}, -3}};
  uint32_t seed = 30;
  for (const auto& c : cases) {
    const auto [x, vx] = input(c.shape, ++seed);
    for (const bool log : {false, true}) {
      const SoftmaxOptions o{.scale = 0.5f, .causal = true, .query_offset = c.offset};
      const double err = run(x, vx, o, log);
      EXPECT_TRUE(err <= tolerance(dtype()))
          << c.shape.to_string() << " offset " << c.offset << " err " << err;
    }
  }
  // Fully masked rows are exactly 0 (softmax) and -inf (log_softmax).
  const auto [x, vx] = input({4, 6}, 40);
  const SoftmaxOptions o{.causal = true, .query_offset = -2};
  const auto s = softmax(x, o).to_vector<float>();
  const auto l = log_softmax(x, o).to_vector<float>();
  for (int64_t j = 0; j < 12; ++j) {
    EXPECT_EQ(s[j], 0.f) << j;
    EXPECT_EQ(l[j], -INFINITY) << j;
  }
  EXPECT_NEAR(s[12], 1.f, 1e-6);
}

TEST_P(Softmax, LargeMagnitudesNeedTheMaxSubtracted) {
  if (dtype() == DType::F16) GTEST_SKIP() << "1e4 is outside f16 precision for this test";
  const auto [x, vx] = input({5, 1000}, 50, -1e4f, 1e4f);
  for (const bool log : {false, true}) {
    const double err = run(x, vx, {}, log);
    EXPECT_TRUE(err <= tolerance(dtype())) << "log " << log << " err " << err;
  }
  const auto [y, vy] = input({3, 64}, 51, 1e4f, 1e4f + 8.f);  // all large and close: every term matters
  for (const bool log : {false, true}) {
    const double err = run(y, vy, {}, log);
    EXPECT_TRUE(err <= tolerance(dtype())) << "close log " << log << " err " << err;
  }
}

TEST_P(Softmax, ViewsInPlaceAndOddOffsets) {
  // Transposed input: the last dimension has stride != 1.
  const auto [base, vbase] = input({33, 5}, 60);
  const Tensor xt = base.transpose(0, 1);  // [5, 33]
  const std::vector<float> vt = xt.contiguous().to_vector<float>();
  EXPECT_TRUE(run(xt, vt, {}, false) <= tolerance(dtype()));
  // Odd element offset: rows start off a 16-byte boundary.
  const auto [wide, vwide] = input({3, 4097}, 61);
  const Tensor xo = wide.narrow(1, 1, 4096);
  EXPECT_TRUE(run(xo, xo.contiguous().to_vector<float>(), {.scale = 2.f}, true) <= tolerance(dtype()));
  // In place, through an interior window of a larger poisoned buffer.
  const auto [x, vx] = input({4, 64}, 62);
  const Tensor holder = full(ctx, {6, 66}, NAN, dtype());
  const Tensor window = holder.narrow(0, 1, 4).narrow(1, 1, 64);
  copy(x, window);
  softmax(window, {}, window);
  const double err = test::max_rel_error(window.to_vector<float>(), reference(vx, 1, 64, {}, false), 1e-3);
  EXPECT_TRUE(err <= tolerance(dtype())) << err;
  const auto all = holder.to_vector<float>();
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 66; ++j)
      if (i == 0 || i == 5 || j == 0 || j == 65) {
        EXPECT_TRUE(std::isnan(all[i * 66 + j])) << i << "," << j;
      }
}

TEST_P(Softmax, NanAndInfPropagateLikeTheReference) {
  std::vector<float> v = test::random_floats(4 * 16, 70);
  v[3] = NAN;             // row 0: NaN in view
  v[16 + 2] = INFINITY;   // row 1: +inf gives NaN (inf - inf)
  v[32 + 15] = NAN;       // row 2: NaN only in a masked column
  v[48 + 4] = -INFINITY;  // row 3: -inf is an ordinary zero-probability entry
  const Tensor x = cast(Tensor::from_vector(ctx, v, {4, 16}), dtype());
  const std::vector<float> vx = x.to_vector<float>();
  for (const bool log : {false, true}) {
    EXPECT_TRUE(run(x, vx, {}, log) <= tolerance(dtype())) << log;
    EXPECT_TRUE(run(x, vx, {.causal = true, .query_offset = 10}, log) <= tolerance(dtype())) << log;
  }
}

TEST_P(Softmax, ErrorsNameTheProblem) {
  const auto [x, vx] = input({2, 8}, 80);
  EXPECT_METALLIC_ERROR(softmax(x.select(0, 0), {.causal = true}), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(softmax(x, {}, zeros(ctx, {2, 7}, dtype())), ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(log_softmax(x, {}, zeros(ctx, {2, 8}, DType::F64)), ErrorCode::DTypeMismatch);
  EXPECT_METALLIC_ERROR(softmax(zeros(ctx, {2, 8}, DType::I32)), ErrorCode::NotSupported);
  EXPECT_METALLIC_ERROR(softmax(Tensor()), ErrorCode::InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Cpu, Softmax, ::testing::ValuesIn(test::float_cases(Device::cpu())), case_name);
INSTANTIATE_TEST_SUITE_P(Cuda, Softmax, ::testing::ValuesIn(test::float_cases(Device::cuda())), case_name);

}  // namespace
}  // namespace metallic
