#include "metallic/ops/activations.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "metallic/ops/copy.h"
#include "metallic/ops/creation.h"
#include "test_support.h"

namespace metallic {
namespace {

using Case = test::DTypeCase;

constexpr auto case_name = test::dtype_case_name;

constexpr auto tolerance = test::dtype_tolerance;

double gelu_erf(double x) { return x * 0.5 * std::erfc(-x / std::sqrt(2.0)); }
double gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * std::pow(x, 3))));
}
double silu(double x) { return x / (1.0 + std::exp(-x)); }

std::vector<double> map_ref(const std::vector<float>& x, const std::function<double(double)>& f) {
  std::vector<double> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = f(x[i]);
  return r;
}

// Activations reach values near zero, where an absolute floor of 1e-2 keeps the relative measure meaningful.
double activation_error(const std::vector<float>& got, const std::vector<double>& want) {
  return test::nonfinite_error(got, want, 1e-2);
}

class Activations : public test::DeviceTest<Case> {
 protected:
  DType dtype() const { return GetParam().dtype; }
  std::pair<Tensor, std::vector<float>> input(const Shape& shape, uint32_t seed, float lo = -6.f,
                                              float hi = 6.f) {
    const Tensor t =
        cast(Tensor::from_vector(ctx, test::random_floats(shape.numel(), seed, lo, hi), shape), dtype());
    return {t, t.to_vector<float>()};
  }
  Tensor poisoned(const Shape& shape) { return full(ctx, shape, NAN, dtype()); }
};

using Unary = std::function<void(const Tensor&, const Tensor&)>;

std::vector<std::pair<Unary, double (*)(double)>> unaries() {
  return {{[](const Tensor& x, const Tensor& o) { gelu(x, GeluApproximation::None, o); }, gelu_erf},
          {[](const Tensor& x, const Tensor& o) { gelu(x, GeluApproximation::Tanh, o); }, gelu_tanh},
          {[](const Tensor& x, const Tensor& o) { silu(x, o); }, silu}};
}

TEST_P(Activations, PointwiseMatchDoubleReference) {
  const std::vector<Shape> shapes = {{1}, {3}, {257}, {4, 1000}, {2, 3, 4101}};
  uint32_t seed = 1;
  for (const Shape& shape : shapes) {
    const auto [x, vx] = input(shape, ++seed);
    int k = 0;
    for (const auto& [op, ref] : unaries()) {
      const Tensor out = poisoned(shape);
      op(x, out);
      const double err = activation_error(out.to_vector<float>(), map_ref(vx, ref));
      EXPECT_TRUE(err <= tolerance(dtype())) << "op " << k << " " << shape.to_string() << " err " << err;
      ++k;
    }
  }
  const auto [x, vx] = input({5, 7}, 9);
  EXPECT_TRUE(activation_error(gelu(x).to_vector<float>(), map_ref(vx, gelu_erf)) <= tolerance(dtype()));
  EXPECT_TRUE(activation_error(silu(x).to_vector<float>(), map_ref(vx, silu)) <= tolerance(dtype()));
}

TEST_P(Activations, ViewsInPlaceAndOddOffsets) {
  const auto [base, vbase] = input({9, 66}, 20);
  int k = 0;
  for (const auto& [op, ref] : unaries()) {
    // Transposed view in, interior window of a poisoned buffer out.
    const Tensor xt = base.narrow(1, 1, 64).transpose(0, 1);  // [64, 9]
    const Tensor holder = poisoned({66, 11});
    const Tensor out = holder.narrow(0, 1, 64).narrow(1, 1, 9);
    op(xt, out);
    double err = activation_error(out.to_vector<float>(), map_ref(xt.contiguous().to_vector<float>(), ref));
    EXPECT_TRUE(err <= tolerance(dtype())) << "op " << k << " transposed err " << err;
    const auto all = holder.to_vector<float>();
    for (int64_t i = 0; i < 66; ++i)
      for (int64_t j = 0; j < 11; ++j)
        if (i == 0 || i == 65 || j == 0 || j == 10) {
          EXPECT_TRUE(std::isnan(all[i * 11 + j])) << i << "," << j;
        }
    // Odd element offset (unaligned rows).
    const Tensor xo = base.narrow(1, 1, 64);
    const Tensor oo = poisoned({9, 64});
    op(xo, oo);
    err = activation_error(oo.to_vector<float>(), map_ref(xo.contiguous().to_vector<float>(), ref));
    EXPECT_TRUE(err <= tolerance(dtype())) << "op " << k << " offset err " << err;
    // In place.
    const Tensor y = base.clone();
    op(y, y);
    err = activation_error(y.to_vector<float>(), map_ref(vbase, ref));
    EXPECT_TRUE(err <= tolerance(dtype())) << "op " << k << " in-place err " << err;
    ++k;
  }
}

TEST_P(Activations, SwigluFromTwoTensorsAndOne) {
  for (const Shape& shape : std::vector<Shape>{{1}, {3, 257}, {2, 4096}, {2, 3, 24}}) {
    const auto [g, vg] = input(shape, 30);
    const auto [u, vu] = input(shape, 31);
    std::vector<double> want(vg.size());
    for (size_t i = 0; i < vg.size(); ++i) want[i] = silu(vg[i]) * vu[i];
    const Tensor out = poisoned(shape);
    swiglu(g, u, out);
    double err = activation_error(out.to_vector<float>(), want);
    EXPECT_TRUE(err <= tolerance(dtype())) << shape.to_string() << " err " << err;
    // One [..., 2F] tensor laid out [gate | up].
    const int64_t f = shape[shape.rank() - 1];
    Shape wide = shape;
    wide[wide.rank() - 1] = 2 * f;
    const Tensor gate_up = poisoned(wide);
    copy(g, gate_up.narrow(-1, 0, f));
    copy(u, gate_up.narrow(-1, f, f));
    const Tensor fused = swiglu(gate_up);
    EXPECT_EQ(fused.shape(), shape);
    err = activation_error(fused.to_vector<float>(), want);
    EXPECT_TRUE(err <= tolerance(dtype())) << shape.to_string() << " fused err " << err;
  }
}

TEST_P(Activations, NanAndInfPropagateLikeTheReference) {
  const std::vector<float> v = {NAN, INFINITY, -INFINITY, 0.f, 1.f, -1.f, 30.f, -30.f, 100.f, -100.f, 1e-3f};
  const Tensor x = cast(Tensor::from_vector(ctx, v, {static_cast<int64_t>(v.size())}), dtype());
  const std::vector<float> vx = x.to_vector<float>();
  int k = 0;
  for (const auto& [op, ref] : unaries()) {
    const Tensor out = poisoned(x.shape());
    op(x, out);
    const double err = activation_error(out.to_vector<float>(), map_ref(vx, ref));
    EXPECT_TRUE(err <= tolerance(dtype())) << "op " << k++ << " err " << err;
  }
  std::vector<double> want(vx.size());
  for (size_t i = 0; i < vx.size(); ++i) want[i] = silu(vx[i]) * vx[i];
  EXPECT_TRUE(activation_error(swiglu(x, x).to_vector<float>(), want) <= tolerance(dtype()));
}

TEST_P(Activations, ErrorsNameTheProblem) {
  const auto [x, vx] = input({2, 8}, 40);
  EXPECT_METALLIC_ERROR(swiglu(input({2, 7}, 41).first), ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(swiglu(x, zeros(ctx, {2, 4}, dtype())), ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(swiglu(x, zeros(ctx, {2, 8}, DType::F64)), ErrorCode::DTypeMismatch);
  EXPECT_METALLIC_ERROR(silu(x, zeros(ctx, {8, 2}, dtype())), ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(gelu(zeros(ctx, {4}, DType::I32)), ErrorCode::NotSupported);
  EXPECT_METALLIC_ERROR(silu(Tensor()), ErrorCode::InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Cpu, Activations, ::testing::ValuesIn(test::float_cases(Device::cpu())), case_name);
INSTANTIATE_TEST_SUITE_P(Cuda, Activations, ::testing::ValuesIn(test::float_cases(Device::cuda())),
                         case_name);

}  // namespace
}  // namespace metallic
