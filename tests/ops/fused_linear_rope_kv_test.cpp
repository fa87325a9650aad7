#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <sstream>
#include <vector>

#include "metallic/model/quant.h"
#include "metallic/ops/copy.h"
#include "metallic/ops/fused_linear.h"
#include "test_support.h"

namespace metallic {
namespace {

// One projection: `batch` sequences of positions.size() tokens, hq query and hkv key/value heads of d.
struct Problem {
  int64_t batch, k, hq, hkv, d;
  std::vector<int32_t> positions;
  int64_t capacity;
  RopeStyle style;
  int64_t rotary_dims;  // 0: all of d
  bool norm, bias, factors;
  DType cache;
  uint32_t seed;
};

std::string describe(const Problem& p) {
  std::ostringstream s;
  s << "B" << p.batch << " K" << p.k << " Hq" << p.hq << " Hkv" << p.hkv << " D" << p.d << " rot"
    << p.rotary_dims << (p.style == RopeStyle::Neox ? " neox" : " interleaved") << " cache " << name(p.cache)
    << " positions";
  for (int32_t pos : p.positions) s << " " << pos;
  return s.str();
}

struct Param {
  Device device;
  DType weight;
  DType x;
};

class FusedLinearRopeKv : public test::DeviceTest<Param> {
 protected:
  // Runs `p` and checks q_out and both caches against a double-precision reference: norm, product, bias and
  // rotation in double from the operands as stored. Errors are measured against |want| plus the size of
  // the terms behind it (as in fused_linear's test), since cancellation can make an output tiny.
  void run(Problem p) {
    const auto [dev, wt, xt] = GetParam();
    // K rounded up to whole blocks of the weight type (256 elements for the grouped types).
    const int64_t block = info(wt).block_size;
    p.k = (p.k + block - 1) / block * block;
    SCOPED_TRACE(describe(p));
    const int64_t s = static_cast<int64_t>(p.positions.size()), m = p.batch * s;
    const int64_t n = (p.hq + 2 * p.hkv) * p.d, rot = p.rotary_dims ? p.rotary_dims : p.d, half = rot / 2;
    const Tensor x = cast(Tensor::from_vector(ctx, test::random_floats(static_cast<size_t>(m * p.k), p.seed),
                                              {p.batch, s, p.k}),
                          xt);
    const std::vector<float> xv = x.to_vector<float>();
    const auto w_src = test::random_floats(static_cast<size_t>(n * p.k), p.seed + 1);
    std::vector<float> wv(w_src.size());
    Tensor w;
    if (is_quantized(wt)) {
      std::vector<uint8_t> raw(static_cast<size_t>(storage_bytes(wt, n * p.k)));
      quant::quantize(wt, w_src.data(), raw.data(), n * p.k);
      quant::dequantize(wt, raw.data(), wv.data(), n * p.k);
      const Tensor u8 = Tensor::from_vector<uint8_t>(ctx, raw, {static_cast<int64_t>(raw.size())});
      w = Tensor(u8.buffer(), u8.offset(), {n, p.k}, {p.k, 1}, wt);
    } else {
      w = cast(Tensor::from_vector(ctx, w_src, {n, p.k}), wt);
      wv = w.to_vector<float>();
    }
    const auto bv = test::random_floats(static_cast<size_t>(n), p.seed + 2);
    const auto gv = test::random_floats(static_cast<size_t>(p.k), p.seed + 3, 0.5f, 1.5f);
    const auto fv = test::random_floats(static_cast<size_t>(half), p.seed + 4, 1.0f, 8.0f);
    const Tensor bias = p.bias ? Tensor::from_vector(ctx, bv, {n}) : Tensor();
    const Tensor gain = p.norm ? Tensor::from_vector(ctx, gv, {p.k}) : Tensor();
    RopeOptions rope{p.style, 10000.0f, 0, p.rotary_dims, {}};
    if (p.factors) rope.freq_factors = Tensor::from_vector(ctx, fv, {half});

    const Shape cache_shape{p.batch, p.capacity, p.hkv, p.d};
    const std::vector<float> poison(static_cast<size_t>(cache_shape.numel()), NAN);
    const RopeKvTargets t{
        Tensor::from_vector(ctx, p.positions, {s}), rope,
        cast(Tensor::from_vector(ctx, std::vector<float>(static_cast<size_t>(m * p.hq * p.d), NAN),
                                 {p.batch, s, p.hq, p.d}),
             p.cache),
        cast(Tensor::from_vector(ctx, poison, cache_shape), p.cache),
        cast(Tensor::from_vector(ctx, poison, cache_shape), p.cache)};
    fused_linear_rope_kv(x, w, bias, {p.norm, gain, 1e-5f, LinearEpilogue::Store}, t);
    const auto got_q = t.q_out.to_vector<float>(), got_k = t.k_cache.to_vector<float>(),
               got_v = t.v_cache.to_vector<float>();

    // The integer GEMV rounds x' to 8 bits (see fused_linear's test); otherwise x's and the outputs' dtypes.
    const bool x8 = dev.is_cuda() && is_quantized(wt);
    const double tol = std::max(x8                  ? 4e-2
                                : xt == DType::BF16 ? 2e-2
                                : xt == DType::F16  ? 4e-3
                                                    : 2e-5,
                                test::dtype_tolerance(p.cache));
    double worst = 0;
    const auto expect = [&](float got, double want, double size, const char* what, int64_t row) {
      const double e = std::abs(got - want) / (std::abs(want) + size);
      if (!(e <= tol) && worst <= tol)
        ADD_FAILURE() << what << " row " << row << ": " << got << " vs " << want;
      if (!(e <= worst)) worst = e;
    };
    std::vector<double> xr(static_cast<size_t>(p.k)), y(static_cast<size_t>(n)), size(y.size());
    std::set<int64_t> written;
    for (int64_t r = 0; r < m; ++r) {
      const int64_t b = r / s, tok = r % s;
      double ss = 0;
      for (int64_t j = 0; j < p.k; ++j) ss += double{xv[r * p.k + j]} * xv[r * p.k + j];
      const double inv = p.norm ? 1.0 / std::sqrt(ss / static_cast<double>(p.k) + 1e-5) : 1.0;
      for (int64_t j = 0; j < p.k; ++j) xr[j] = xv[r * p.k + j] * inv * (p.norm ? gv[j] : 1.0);
      for (int64_t row = 0; row < n; ++row) {
        double acc = p.bias ? bv[row] : 0.0, sq = 0;
        for (int64_t j = 0; j < p.k; ++j) {
          const double term = xr[j] * wv[row * p.k + j];
          acc += term, sq += term * term;
        }
        y[row] = acc;
        size[row] = std::sqrt(sq) + (p.bias ? std::abs(bv[row]) : 0.0);
      }
      const int32_t pos = p.positions[static_cast<size_t>(tok)];
      // Rotates head `h` of y (stacked index) in place, the sizes of a pair becoming their sum.
      const auto rotate = [&](int64_t h) {
        for (int64_t i = 0; i < half; ++i) {
          const int64_t a = h * p.d + (p.style == RopeStyle::Neox ? i : 2 * i);
          const int64_t c = a + (p.style == RopeStyle::Neox ? half : 1);
          double angle = pos * std::pow(10000.0, -2.0 * static_cast<double>(i) / static_cast<double>(rot));
          if (p.factors) angle /= fv[i];
          const double ya = y[a], yc = y[c];
          y[a] = ya * std::cos(angle) - yc * std::sin(angle);
          y[c] = ya * std::sin(angle) + yc * std::cos(angle);
          size[a] = size[c] = size[a] + size[c];
        }
      };
      for (int64_t h = 0; h < p.hq + p.hkv; ++h) rotate(h);
      for (int64_t j = 0; j < p.hq * p.d; ++j)
        expect(got_q[static_cast<size_t>(r * p.hq * p.d + j)], y[j], size[j], "q", r);
      if (pos < 0 || pos >= p.capacity) continue;
      written.insert(b * p.capacity + pos);
      for (int64_t j = 0; j < p.hkv * p.d; ++j) {
        const auto at = static_cast<size_t>((b * p.capacity + pos) * p.hkv * p.d + j);
        const int64_t kj = p.hq * p.d + j, vj = kj + p.hkv * p.d;
        expect(got_k[at], y[kj], size[kj], "k", r);
        expect(got_v[at], y[vj], size[vj], "v", r);
      }
    }
    EXPECT_LE(worst, tol);
    for (int64_t row = 0; row < p.batch * p.capacity; ++row)
      if (!written.count(row)) {
        ASSERT_TRUE(std::isnan(got_k[static_cast<size_t>(row * p.hkv * p.d)])) << "k cache row " << row;
        ASSERT_TRUE(std::isnan(got_v[static_cast<size_t>(row * p.hkv * p.d)])) << "v cache row " << row;
      }
  }
};

TEST_P(FusedLinearRopeKv, BothStylesOneToEightTokens) {
  const DType caches[] = {DType::F16, DType::F32, DType::BF16};
  uint32_t seed = 10;
  for (RopeStyle style : {RopeStyle::Neox, RopeStyle::Interleaved})
    for (const std::vector<int32_t>& positions : std::vector<std::vector<int32_t>>{
             {5}, {0, 1}, {7, 8, 9}, {12, 3, 40, 41, 2}, {1, 2, 3, 4, 5, 6, 7, 8}}) {
      const DType cache = caches[seed % 3];
      run({1, 64, 4, 2, 64, positions, 48, style, 0, true, true, false, cache, seed++});
    }
}

TEST_P(FusedLinearRopeKv, SeveralSequencesAndNoNormOrBias) {
  run({2, 96, 4, 1, 64, {17}, 20, RopeStyle::Neox, 0, false, false, false, DType::F16, 30});
  run({3, 96, 2, 2, 32, {4, 0}, 6, RopeStyle::Interleaved, 0, true, false, true, DType::F32, 31});
}

TEST_P(FusedLinearRopeKv, LongRowsAndWideHeads) {
  // K = 4608 takes two weight rows per block, K = 3584 over 2048 rows four, K = 1024 eight.
  run({1, 4608, 7, 1, 128, {100}, 128, RopeStyle::Neox, 0, true, true, false, DType::F16, 40});
  run({1, 3584, 12, 2, 128, {63}, 64, RopeStyle::Neox, 0, true, true, true, DType::BF16, 41});
  run({1, 1024, 4, 2, 128, {2, 3}, 8, RopeStyle::Interleaved, 0, true, true, false, DType::F32, 42});
}

TEST_P(FusedLinearRopeKv, FarPositionsAndFrequencyFactors) {
  run({1, 64, 2, 1, 64, {30000}, 30001, RopeStyle::Neox, 0, true, true, true, DType::F32, 50});
}

TEST_P(FusedLinearRopeKv, PositionsOutsideTheCacheWriteOnlyQ) {
  run({1, 64, 4, 2, 64, {3, 9, -1, 4}, 9, RopeStyle::Neox, 0, true, true, false, DType::F16, 60});
}

TEST_P(FusedLinearRopeKv, PartialRotationAndOddHeads) {
  // Shapes the one-pass epilogue leaves to the separate ops: a pass-through tail, a head of 12.
  run({1, 64, 4, 2, 64, {6, 7}, 16, RopeStyle::Neox, 32, true, true, false, DType::F16, 70});
  run({1, 64, 3, 1, 12, {1}, 4, RopeStyle::Interleaved, 0, true, true, true, DType::F32, 71});
}

TEST_P(FusedLinearRopeKv, NoTokensWriteNothing) {
  const auto cache = cast(Tensor::from_vector(ctx, std::vector<float>(64, NAN), {1, 4, 2, 8}), DType::F16);
  const RopeKvTargets t{Tensor::from_vector(ctx, std::vector<int32_t>{}, {0}),
                        {},
                        Tensor::empty(ctx, {1, 0, 4, 8}, DType::F16),
                        cache,
                        cache.clone()};
  const DType wt = is_quantized(GetParam().weight) ? DType::F32 : GetParam().weight;
  const Tensor w = cast(Tensor::from_vector(ctx, test::random_floats(64 * 16, 6), {64, 16}), wt);
  fused_linear_rope_kv(Tensor::empty(ctx, {0, 16}, GetParam().x), w, {}, {true, {}, 1e-5f}, t);
  for (float v : t.k_cache.to_vector<float>()) ASSERT_TRUE(std::isnan(v));
}

TEST_P(FusedLinearRopeKv, RejectsBadArguments) {
  const auto make = [&](const Shape& shape, DType dtype = DType::F32) {
    return cast(Tensor::from_vector(ctx, test::random_floats(static_cast<size_t>(shape.numel()), 5), shape),
                dtype);
  };
  const Tensor x = make({2, 16}), w = make({64, 16});
  const RopeKvTargets t{Tensor::from_vector(ctx, std::vector<int32_t>{0, 1}, {2}),
                        {},
                        make({1, 2, 4, 8}),
                        make({1, 8, 2, 8}),
                        make({1, 8, 2, 8})};
  const FusedLinearOptions plain{};
  EXPECT_METALLIC_ERROR(fused_linear_rope_kv(x, w, {}, {false, {}, 0.f, LinearEpilogue::SwiGLU}, t),
                        ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(fused_linear_rope_kv(x, make({48, 16}), {}, plain, t), ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(fused_linear_rope_kv(make({3, 16}), w, {}, plain, t), ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(fused_linear_rope_kv(x, make({64, 8}), {}, plain, t), ErrorCode::ShapeMismatch);
  RopeKvTargets wrong = t;
  wrong.q_out = make({1, 2, 4, 8}, DType::F16);
  EXPECT_METALLIC_ERROR(fused_linear_rope_kv(x, w, {}, plain, wrong), ErrorCode::DTypeMismatch);
  wrong = t;
  wrong.positions = Tensor::from_vector(ctx, std::vector<int32_t>{0}, {1});
  EXPECT_METALLIC_ERROR(fused_linear_rope_kv(x, w, {}, plain, wrong), ErrorCode::ShapeMismatch);
  // x read from the rows of the cache the product writes.
  wrong = t;
  EXPECT_METALLIC_ERROR(fused_linear_rope_kv(t.k_cache.view({2, 64}).narrow(1, 0, 16), w, {}, plain, wrong),
                        ErrorCode::InvalidArgument);
}

std::string param_name(const ::testing::TestParamInfo<Param>& p) {
  return std::string(name(p.param.weight)) + "_x" + std::string(name(p.param.x));
}

#define MTL_ROPE_KV_PARAMS(dev)                                                                 \
  ::testing::Values(Param{dev, DType::F32, DType::F32}, Param{dev, DType::F16, DType::F32},     \
                    Param{dev, DType::BF16, DType::BF16}, Param{dev, DType::F16, DType::F16},   \
                    Param{dev, DType::Q8_0, DType::F32}, Param{dev, DType::Q4_0X8, DType::F32}, \
                    Param{dev, DType::Q8_0X8, DType::F16}, Param{dev, DType::Q4_K, DType::BF16})

INSTANTIATE_TEST_SUITE_P(Cpu, FusedLinearRopeKv, MTL_ROPE_KV_PARAMS(Device::cpu()), param_name);
INSTANTIATE_TEST_SUITE_P(Cuda, FusedLinearRopeKv, MTL_ROPE_KV_PARAMS(Device::cuda()), param_name);

}  // namespace
}  // namespace metallic
