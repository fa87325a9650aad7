#include "metallic/ops/norms.h"

#include <gtest/gtest.h>

#include <cmath>

#include "metallic/ops/copy.h"
#include "metallic/ops/creation.h"
#include "test_support.h"

namespace metallic {
namespace {

using Case = test::DTypeCase;

constexpr auto case_name = test::dtype_case_name;

// Relative tolerance: one rounding of the output to the dtype plus f32 accumulation.
constexpr auto tolerance = test::dtype_tolerance;

// Naive double references, one row of h values at a time.
std::vector<double> rms_reference(const std::vector<float>& x, int64_t h, const std::vector<float>& w,
                                  double eps) {
  std::vector<double> r(x.size());
  for (size_t row = 0; row < x.size() / static_cast<size_t>(h); ++row) {
    double ss = 0;
    for (int64_t i = 0; i < h; ++i) ss += std::pow(static_cast<double>(x[row * h + i]), 2);
    const double scale = 1.0 / std::sqrt(ss / static_cast<double>(h) + eps);
    for (int64_t i = 0; i < h; ++i) r[row * h + i] = x[row * h + i] * scale * (w.empty() ? 1.0 : w[i]);
  }
  return r;
}

std::vector<double> layer_reference(const std::vector<float>& x, int64_t h, const std::vector<float>& w,
                                    const std::vector<float>& b, double eps) {
  std::vector<double> r(x.size());
  for (size_t row = 0; row < x.size() / static_cast<size_t>(h); ++row) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < h; ++i) mean += x[row * h + i];
    mean /= static_cast<double>(h);
    for (int64_t i = 0; i < h; ++i) var += std::pow(x[row * h + i] - mean, 2);
    const double inv = 1.0 / std::sqrt(var / static_cast<double>(h) + eps);
    for (int64_t i = 0; i < h; ++i)
      r[row * h + i] = (x[row * h + i] - mean) * inv * (w.empty() ? 1.0 : w[i]) + (b.empty() ? 0.0 : b[i]);
  }
  return r;
}

using test::nonfinite_error;

class Norms : public test::DeviceTest<Case> {
 protected:
  DType dtype() const { return GetParam().dtype; }
  // Seeded values stored in `dt`; returns the tensor and the values as stored.
  std::pair<Tensor, std::vector<float>> input(const Shape& shape, uint32_t seed, DType dt, float lo = -2.f,
                                              float hi = 2.f) {
    const Tensor t =
        cast(Tensor::from_vector(ctx, test::random_floats(shape.numel(), seed, lo, hi), shape), dt);
    return {t, t.to_vector<float>()};
  }
  Tensor poisoned(const Shape& shape) { return full(ctx, shape, NAN, dtype()); }
};

TEST_P(Norms, RmsNormMatchesDoubleReference) {
  // {5, 1024} on CUDA: rows of exactly as many packs as their threads hold, four rows per block, and a last
  // block with three of its four rows past the end.
  const std::vector<Shape> shapes = {{1, 1},  {5, 3},    {3, 257},  {2, 4096}, {2, 2, 3, 7},
                                     {40000}, {3, 9000}, {5, 3000}, {5, 1024}};
  uint32_t seed = 10;
  for (const Shape& shape : shapes) {
    const int64_t h = shape[shape.rank() - 1];
    const auto [x, vx] = input(shape, ++seed, dtype());
    const auto [w, vw] = input({h}, ++seed, dtype(), 0.5f, 1.5f);
    const Tensor out = poisoned(shape);
    rms_norm(x, w, 1e-5f, out);
    double err = test::max_rel_error(out.to_vector<float>(), rms_reference(vx, h, vw, 1e-5));
    EXPECT_TRUE(err <= tolerance(dtype())) << shape.to_string() << " err " << err;
    // No weight: ones.
    err =
        test::max_rel_error(rms_norm(x, Tensor(), 1e-6f).to_vector<float>(), rms_reference(vx, h, {}, 1e-6));
    EXPECT_TRUE(err <= tolerance(dtype())) << shape.to_string() << " unweighted err " << err;
  }
}

TEST_P(Norms, F32WeightsWithAnyActivationDtype) {
  const auto [x, vx] = input({4, 384}, 3, dtype());
  const auto [w, vw] = input({384}, 4, DType::F32, 0.5f, 1.5f);
  const double err =
      test::max_rel_error(rms_norm(x, w, 1e-5f).to_vector<float>(), rms_reference(vx, 384, vw, 1e-5));
  EXPECT_TRUE(err <= tolerance(dtype())) << err;
}

TEST_P(Norms, AddRmsNormWritesSumAndNormed) {
  for (const Shape& shape : std::vector<Shape>{{3, 257}, {2, 2, 4096}, {1, 3}}) {
    const int64_t h = shape[shape.rank() - 1];
    const auto [x, vx] = input(shape, 20, dtype());
    const auto [r, vr] = input(shape, 21, dtype());
    const auto [w, vw] = input({h}, 22, dtype(), 0.5f, 1.5f);
    std::vector<double> sum_ref(vx.size());
    std::vector<float> sum_f(vx.size());
    for (size_t i = 0; i < vx.size(); ++i) sum_f[i] = static_cast<float>(sum_ref[i] = double{vx[i]} + vr[i]);
    const std::vector<double> normed_ref = rms_reference(sum_f, h, vw, 1e-5);
    // Separate outputs.
    const Tensor sum = poisoned(shape), normed = poisoned(shape);
    add_rms_norm(x, r, w, 1e-5f, sum, normed);
    double err = test::max_rel_error(sum.to_vector<float>(), sum_ref);
    EXPECT_TRUE(err <= tolerance(dtype())) << shape.to_string() << " sum err " << err;
    err = test::max_rel_error(normed.to_vector<float>(), normed_ref);
    EXPECT_TRUE(err <= tolerance(dtype())) << shape.to_string() << " normed err " << err;
    // sum aliasing residual: the in-place residual update of a transformer layer.
    const Tensor residual = r.clone(), normed2 = poisoned(shape);
    add_rms_norm(x, residual, w, 1e-5f, residual, normed2);
    err = test::max_rel_error(residual.to_vector<float>(), sum_ref);
    EXPECT_TRUE(err <= tolerance(dtype())) << shape.to_string() << " aliased sum err " << err;
    err = test::max_rel_error(normed2.to_vector<float>(), normed_ref);
    EXPECT_TRUE(err <= tolerance(dtype())) << shape.to_string() << " aliased normed err " << err;
  }
}

TEST_P(Norms, LayerNormMatchesDoubleReference) {
  uint32_t seed = 40;
  // {5, 1024}: on CUDA several rows per block, the last block's spare rows past the end.
  for (const Shape& shape :
       std::vector<Shape>{{1, 1}, {4, 3}, {3, 257}, {2, 4096}, {5, 1024}, {5, 3000}, {2, 20000}}) {
    const int64_t h = shape[shape.rank() - 1];
    const auto [x, vx] =
        input(shape, ++seed, dtype(), 1.f, 3.f);  // a large mean exercises the two-pass variance
    const auto [w, vw] = input({h}, ++seed, dtype(), 0.5f, 1.5f);
    const auto [b, vb] = input({h}, ++seed, dtype());
    const Tensor out = poisoned(shape);
    layer_norm(x, w, b, 1e-5f, out);
    double err = test::max_rel_error(out.to_vector<float>(), layer_reference(vx, h, vw, vb, 1e-5));
    EXPECT_TRUE(err <= tolerance(dtype()) * 2) << shape.to_string() << " err " << err;
    err = test::max_rel_error(layer_norm(x, Tensor(), Tensor(), 1e-5f).to_vector<float>(),
                              layer_reference(vx, h, {}, {}, 1e-5));
    EXPECT_TRUE(err <= tolerance(dtype()) * 2) << shape.to_string() << " plain err " << err;
  }
}

TEST_P(Norms, WeightWrittenByTheOpJustBefore) {
  // The weight is rewritten each round by an RMSNorm over one row (a kernel that lets its dependents launch
  // before it ends) while the norm before still holds the old weight in its caches. Rounds alternate
  // layer_norm and rms_norm; no round waits for the one before.
  const int64_t rows = 1024, h = 4096, rounds = 6;
  const auto [x, vx] = input({rows, h}, 50, dtype());
  const auto [g, vg] = input({h}, 51, dtype(), 0.5f, 1.5f);
  const Tensor w = poisoned({1, h});
  std::vector<Tensor> src, out;
  for (int64_t r = 0; r < rounds; ++r) {
    src.push_back(input({1, h}, 52 + static_cast<uint32_t>(r), dtype()).first);
    rms_norm(src.back(), g, 1e-5f, w);
    const Tensor wh = w.reshape({h});
    out.push_back(r % 2 ? rms_norm(x, wh, 1e-5f) : layer_norm(x, wh, Tensor(), 1e-5f));
  }
  for (int64_t r = 0; r < rounds; ++r) {
    // The same kernel into a tensor of its own gives the exact weight the norm read.
    const std::vector<float> vw = rms_norm(src[static_cast<size_t>(r)], g, 1e-5f).to_vector<float>();
    const double err =
        test::max_rel_error(out[static_cast<size_t>(r)].to_vector<float>(),
                            r % 2 ? rms_reference(vx, h, vw, 1e-5) : layer_reference(vx, h, vw, {}, 1e-5));
    EXPECT_TRUE(err <= tolerance(dtype()) * 2) << "round " << r << " err " << err;
  }
}

// Rows far from zero whose first value is an outlier: the variance must not come out of E[x^2] - E[x]^2
// about zero, nor lose its precision to a shift at the outlier.
TEST_P(Norms, LayerNormKeepsPrecisionFarFromZero) {
  for (const Shape& shape : std::vector<Shape>{{3, 4096}, {2, 300}, {1, 20000}}) {
    const int64_t h = shape[shape.rank() - 1];
    std::vector<float> v = test::random_floats(shape.numel(), 60, 99.f, 101.f);
    for (int64_t row = 0; row < shape.numel() / h; ++row) v[static_cast<size_t>(row * h)] = 130.f;
    const Tensor x = cast(Tensor::from_vector(ctx, v, shape), dtype());
    const std::vector<float> vx = x.to_vector<float>();
    const double err = test::max_rel_error(layer_norm(x, Tensor(), Tensor(), 1e-5f).to_vector<float>(),
                                           layer_reference(vx, h, {}, {}, 1e-5));
    EXPECT_TRUE(err <= tolerance(dtype()) * 2) << shape.to_string() << " err " << err;
  }
}

TEST_P(Norms, ViewsWithOffsetsAndStrides) {
  // x: a transposed slice (last-dim stride != 1); out: an interior window of a poisoned buffer.
  const auto [base, vbase] = input({40, 6}, 50, dtype());
  const Tensor x = base.narrow(1, 1, 5).transpose(0, 1);  // [5, 40], strides {1, 6}
  std::vector<float> vx(5 * 40);
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 40; ++j) vx[i * 40 + j] = vbase[j * 6 + 1 + i];
  const auto [w, vw] = input({40}, 51, dtype(), 0.5f, 1.5f);
  const Tensor out_base = poisoned({7, 42});
  const Tensor out = out_base.narrow(0, 1, 5).narrow(1, 1, 40);
  rms_norm(x, w, 1e-5f, out);
  EXPECT_TRUE(test::max_rel_error(out.to_vector<float>(), rms_reference(vx, 40, vw, 1e-5)) <=
              tolerance(dtype()));
  const auto all = out_base.to_vector<float>();
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t j = 0; j < 42; ++j)
      if (i == 0 || i == 6 || j == 0 || j == 41) {
        EXPECT_TRUE(std::isnan(all[i * 42 + j])) << "wrote outside the view at " << i << "," << j;
      }
  // Odd element offsets: rows that start off a 16-byte boundary take the unaligned path.
  const auto [big, vbig] = input({3, 4097}, 52, dtype());
  const auto [w2, vw2] = input({4096}, 53, dtype(), 0.5f, 1.5f);
  const Tensor xo = big.narrow(1, 1, 4096);
  std::vector<float> vxo;
  for (int64_t i = 0; i < 3; ++i)
    vxo.insert(vxo.end(), vbig.begin() + i * 4097 + 1, vbig.begin() + (i + 1) * 4097);
  const double err =
      test::max_rel_error(rms_norm(xo, w2, 1e-5f).to_vector<float>(), rms_reference(vxo, 4096, vw2, 1e-5));
  EXPECT_TRUE(err <= tolerance(dtype())) << err;
  // Offset weight view.
  const auto [wb, vwb] = input({4100}, 54, dtype(), 0.5f, 1.5f);
  const std::vector<float> vw3(vwb.begin() + 3, vwb.begin() + 4099);
  const Tensor x3 = big.narrow(1, 0, 4096).contiguous();
  std::vector<float> vx3;
  for (int64_t i = 0; i < 3; ++i)
    vx3.insert(vx3.end(), vbig.begin() + i * 4097, vbig.begin() + i * 4097 + 4096);
  const double err3 = test::max_rel_error(rms_norm(x3, wb.narrow(0, 3, 4096), 1e-5f).to_vector<float>(),
                                          rms_reference(vx3, 4096, vw3, 1e-5));
  EXPECT_TRUE(err3 <= tolerance(dtype())) << err3;
}

TEST_P(Norms, NanAndInfPropagateToTheirRow) {
  std::vector<float> v = test::random_floats(3 * 64, 60);
  v[5] = NAN;
  v[64 + 7] = INFINITY;
  const Tensor x = cast(Tensor::from_vector(ctx, v, {3, 64}), dtype());
  const std::vector<float> vx = x.to_vector<float>();
  const std::vector<double> rms_ref = rms_reference(vx, 64, {}, 1e-5);
  const std::vector<double> layer_ref = layer_reference(vx, 64, {}, {}, 1e-5);
  for (int64_t j = 0; j < 64; ++j) ASSERT_TRUE(std::isnan(rms_ref[j]) && std::isfinite(rms_ref[128 + j]));
  double err = nonfinite_error(rms_norm(x, Tensor(), 1e-5f).to_vector<float>(), rms_ref);
  EXPECT_TRUE(err <= tolerance(dtype())) << err;
  err = nonfinite_error(layer_norm(x, Tensor(), Tensor(), 1e-5f).to_vector<float>(), layer_ref);
  EXPECT_TRUE(err <= tolerance(dtype())) << err;
  const Tensor sum = poisoned({3, 64}), normed = poisoned({3, 64});
  add_rms_norm(x, zeros_like(x), Tensor(), 1e-5f, sum, normed);
  err = nonfinite_error(normed.to_vector<float>(), rms_ref);
  EXPECT_TRUE(err <= tolerance(dtype())) << err;
}

TEST_P(Norms, ErrorsNameTheProblem) {
  const auto [x, vx] = input({2, 8}, 70, dtype());
  EXPECT_METALLIC_ERROR(rms_norm(x, zeros(ctx, {7}, dtype()), 1e-5f), ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(rms_norm(x, zeros(ctx, {8}, DType::I32), 1e-5f), ErrorCode::DTypeMismatch);
  EXPECT_METALLIC_ERROR(rms_norm(x, Tensor(), 1e-5f, zeros(ctx, {2, 9}, dtype())), ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(rms_norm(zeros(ctx, {2, 8}, DType::I32), Tensor(), 1e-5f), ErrorCode::NotSupported);
  EXPECT_METALLIC_ERROR(rms_norm(Tensor(), Tensor(), 1e-5f), ErrorCode::InvalidArgument);
  const Tensor o = zeros(ctx, {2, 8}, dtype());
  EXPECT_METALLIC_ERROR(add_rms_norm(x, zeros(ctx, {2, 7}, dtype()), Tensor(), 1e-5f, o, o),
                        ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(layer_norm(x, zeros(ctx, {8}, DType::F32), zeros(ctx, {8}, DType::F64), 1e-5f),
                        ErrorCode::DTypeMismatch);
}

INSTANTIATE_TEST_SUITE_P(Cpu, Norms, ::testing::ValuesIn(test::float_cases(Device::cpu())), case_name);
INSTANTIATE_TEST_SUITE_P(Cuda, Norms, ::testing::ValuesIn(test::float_cases(Device::cuda())), case_name);

}  // namespace
}  // namespace metallic
