#include "metallic/ops/matmul.h"

#include <gtest/gtest.h>

#include "metallic/core/resource_cache.h"
#include "metallic/ops/copy.h"
#include "test_support.h"

namespace metallic {
namespace {

using test::BackendTest;

double tol(DType t) { return t == DType::BF16 ? 2e-2 : t == DType::F16 ? 4e-3 : 1e-5; }

// Host values of a (possibly strided) tensor in row-major order of its shape.
std::vector<float> host(const Tensor& t) { return t.contiguous().to_vector<float>(); }

// Naive double reference for out = alpha op(a) op(b) + beta out0 with batch broadcasting; all inputs given
// as row-major host arrays of their shapes.
std::vector<double> reference(const std::vector<float>& a, Shape sa, const std::vector<float>& b, Shape sb,
                              const std::vector<float>& out0, const Shape& so, const MatmulOptions& o) {
  const int r = so.rank();
  const int64_t m = so[r - 2], n = so[r - 1];
  const int64_t k = o.transpose_a ? sa[sa.rank() - 2] : sa[sa.rank() - 1];
  std::vector<double> res(static_cast<size_t>(so.numel()));
  const int64_t batches = so.numel() / (m * n);
  for (int64_t bi = 0; bi < batches; ++bi) {
    // batch index -> offsets in a and b (broadcast from the right)
    int64_t rest = bi, oa = 0, ob = 0, ma = 1, mb = 1;
    for (int d = r - 3; d >= 0; --d) {
      const int64_t idx = rest % so[d];
      rest /= so[d];
      const int da = d - (r - sa.rank()), db = d - (r - sb.rank());
      if (da >= 0) {
        oa += (sa[da] == 1 ? 0 : idx) * ma;
        ma *= sa[da];
      }
      if (db >= 0) {
        ob += (sb[db] == 1 ? 0 : idx) * mb;
        mb *= sb[db];
      }
    }
    const int64_t a_rows = sa[sa.rank() - 2], a_cols = sa[sa.rank() - 1];
    const int64_t b_rows = sb[sb.rank() - 2], b_cols = sb[sb.rank() - 1];
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) {
          const double av = o.transpose_a ? a[static_cast<size_t>(oa * a_rows * a_cols + p * a_cols + i)]
                                          : a[static_cast<size_t>(oa * a_rows * a_cols + i * a_cols + p)];
          const double bv = o.transpose_b ? b[static_cast<size_t>(ob * b_rows * b_cols + j * b_cols + p)]
                                          : b[static_cast<size_t>(ob * b_rows * b_cols + p * b_cols + j)];
          s += av * bv;
        }
        const size_t oi = static_cast<size_t>(bi * m * n + i * n + j);
        res[oi] = o.alpha * s + (o.beta != 0.f ? o.beta * static_cast<double>(out0[oi]) : 0.0);
      }
  }
  return res;
}

struct Param {
  Device device;
  DType dtype;
};

class Matmul : public test::DeviceTest<Param> {
 protected:
  void SetUp() override {
    test::DeviceTest<Param>::SetUp();
    dt = GetParam().dtype;
  }
  Tensor make(const Shape& s, uint32_t seed) {
    auto v = test::random_floats(static_cast<size_t>(s.numel()), seed);
    return cast(Tensor::from_vector<float>(ctx, v, s), dt);
  }
  void run_case(const Shape& sa, const Shape& sb, const MatmulOptions& o, uint32_t seed) {
    Tensor a = make(sa, seed), b = make(sb, seed + 1);
    // Output shape
    const int64_t m = o.transpose_a ? sa[sa.rank() - 1] : sa[sa.rank() - 2];
    const int64_t n = o.transpose_b ? sb[sb.rank() - 2] : sb[sb.rank() - 1];
    Shape batch;
    {
      Shape ba, bb;
      for (int d = 0; d < sa.rank() - 2; ++d) ba.push_back(sa[d]);
      for (int d = 0; d < sb.rank() - 2; ++d) bb.push_back(sb[d]);
      batch = broadcast_shapes(ba, bb, "test");
    }
    Shape so = batch;
    so.push_back(m);
    so.push_back(n);
    Tensor out = make(so, seed + 2);
    const auto out0 = host(out);
    matmul(a, b, out, o);
    const auto want = reference(host(a), sa, host(b), sb, out0, so, o);
    EXPECT_LE(test::max_rel_error(host(out), want), tol(dt))
        << "a " << sa.to_string() << " b " << sb.to_string() << " ta " << o.transpose_a << " tb "
        << o.transpose_b;
  }
  DType dt = DType::F32;
};

TEST_P(Matmul, Plain) {
  for (int64_t s : {1, 3, 257}) run_case({s, 33}, {33, s + 2}, {}, 1);
  run_case({64, 128}, {128, 96}, {}, 2);
}

TEST_P(Matmul, Transposes) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      MatmulOptions o;
      o.transpose_a = ta, o.transpose_b = tb;
      run_case(ta ? Shape{19, 7} : Shape{7, 19}, tb ? Shape{5, 19} : Shape{19, 5}, o, 3);
      run_case(ta ? Shape{2, 65, 31} : Shape{2, 31, 65}, tb ? Shape{2, 17, 65} : Shape{2, 65, 17}, o, 4);
    }
}

TEST_P(Matmul, AlphaBetaAndBroadcastBatch) {
  MatmulOptions o;
  o.alpha = 0.5f, o.beta = -1.25f;
  run_case({3, 1, 9, 40}, {4, 40, 11}, o, 5);  // batch [3,1] x [4] -> [3,4]
  run_case({1, 9, 40}, {5, 40, 11}, o, 6);
  o.transpose_b = true;
  run_case({2, 3, 9, 40}, {11, 40}, o, 7);  // b without batch dims
}

TEST_P(Matmul, StridedAndOffsetViews) {
  // a: rows of a wider matrix with an offset; b: every other column (neither inner stride unit).
  Tensor big = make({40, 70}, 8);
  Tensor a = big.narrow(0, 3, 20).narrow(1, 5, 33);  // [20, 33], row stride 70, offset
  Tensor bb = make({33, 50}, 9);
  Tensor b = bb.slice(1, 1, 50, 2);  // [33, 25], column stride 2
  Tensor outbig = make({30, 40}, 10);
  Tensor out = outbig.narrow(0, 2, 20).narrow(1, 7, 25);
  const auto out0 = host(out);
  MatmulOptions o;
  o.beta = 0.75f;
  matmul(a, b, out, o);
  const auto want = reference(host(a), {20, 33}, host(b), {33, 25}, out0, {20, 25}, o);
  EXPECT_LE(test::max_rel_error(host(out), want), tol(dt));
  // Column-major (transposed) output view.
  Tensor outT = make({25, 20}, 11).transpose(0, 1);
  matmul(a, b, outT);
  const auto want2 = reference(host(a), {20, 33}, host(b), {33, 25}, {}, {20, 25}, {});
  EXPECT_LE(test::max_rel_error(host(outT), want2), tol(dt));
  // Batch dims that are not uniformly strided (a permuted batch).
  Tensor c = make({3, 4, 6, 8}, 12).permute({1, 0, 2, 3});  // [4, 3, 6, 8]
  Tensor d = make({8, 5}, 13);
  Tensor r = matmul(c, d);
  const auto want3 = reference(host(c), {4, 3, 6, 8}, host(d), {8, 5}, {}, {4, 3, 6, 5}, {});
  EXPECT_LE(test::max_rel_error(host(r), want3), tol(dt));
}

TEST_P(Matmul, Errors) {
  Tensor a = make({4, 5}, 1), b = make({6, 3}, 2);
  EXPECT_METALLIC_ERROR(matmul(a, b), ErrorCode::ShapeMismatch);
  Tensor b2 = cast(make({5, 3}, 3), dt == DType::F32 ? DType::F16 : DType::F32);
  EXPECT_METALLIC_ERROR(matmul(a, b2), ErrorCode::DTypeMismatch);
  Tensor i = Tensor::from_vector<int32_t>(ctx, std::vector<int32_t>(20, 1), {4, 5});
  EXPECT_METALLIC_ERROR(matmul(i, i.transpose(0, 1)), ErrorCode::NotSupported);
  Tensor out = make({4, 4}, 4);
  EXPECT_METALLIC_ERROR(matmul(a, make({5, 3}, 5), out), ErrorCode::ShapeMismatch);
}

TEST_P(Matmul, RepeatedCallsHitThePlanCache) {
  if (!GetParam().device.is_cuda()) GTEST_SKIP();
  Tensor a = make({64, 64}, 1), b = make({64, 64}, 2);
  (void)matmul(a, b);
  const auto before = ctx->cache().stats();
  (void)matmul(a, b);
  const auto after = ctx->cache().stats();
  EXPECT_EQ(after.misses, before.misses);
  EXPECT_GT(after.hits, before.hits);
}

std::string param_name(const ::testing::TestParamInfo<Param>& p) { return std::string(name(p.param.dtype)); }

INSTANTIATE_TEST_SUITE_P(Cpu, Matmul,
                         ::testing::Values(Param{Device::cpu(), DType::F32}, Param{Device::cpu(), DType::F16},
                                           Param{Device::cpu(), DType::BF16}),
                         param_name);
INSTANTIATE_TEST_SUITE_P(Cuda, Matmul,
                         ::testing::Values(Param{Device::cuda(), DType::F32},
                                           Param{Device::cuda(), DType::F16},
                                           Param{Device::cuda(), DType::BF16}),
                         param_name);

}  // namespace
}  // namespace metallic
