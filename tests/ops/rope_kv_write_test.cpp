#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "metallic/ops/copy.h"
#include "metallic/ops/rope.h"
#include "test_support.h"

namespace metallic {
namespace {

using Case = test::DTypeCase;

class RopeKvWrite : public test::DeviceTest<Case> {
 protected:
  // Rotates, writes, and checks q and both caches against the rope op on the CPU, token by token.
  void run(RopeStyle style, int64_t d, int64_t rot, bool factors, DType cache_dtype,
           const std::vector<int32_t>& positions, int64_t capacity) {
    SCOPED_TRACE(::testing::Message() << "D" << d << " rot" << rot << " cache " << name(cache_dtype));
    const DType dtype = GetParam().dtype;
    const int64_t b = 2, s = static_cast<int64_t>(positions.size()), hq = 4, hkv = 2;
    const auto host = Context::create(Device::cpu());
    const auto make = [&](const Shape& shape, uint32_t seed) {
      return cast(
          Tensor::from_vector(ctx, test::random_floats(static_cast<size_t>(shape.numel()), seed), shape),
          dtype);
    };
    const Tensor q = make({b, s, hq, d}, 1), k = make({b, s, hkv, d}, 2), v = make({b, s, hkv, d}, 3);
    // The reference starts from the inputs as stored in `dtype`.
    const Tensor q0 = q.to(host), k0 = k.to(host), v0 = v.to(host);
    const Shape cache_shape{b, capacity, hkv, d};
    const std::vector<float> poison(static_cast<size_t>(cache_shape.numel()), NAN);
    const Tensor kc = cast(Tensor::from_vector(ctx, poison, cache_shape), cache_dtype);
    const Tensor vc = cast(Tensor::from_vector(ctx, poison, cache_shape), cache_dtype);
    RopeOptions options{style, 10000.0f, 0, rot, {}};
    RopeOptions host_options = options;
    if (factors) {
      const auto f = test::random_floats(static_cast<size_t>(rot / 2), 4, 1.0f, 8.0f);
      options.freq_factors = Tensor::from_vector(ctx, f, {rot / 2});
      host_options.freq_factors = Tensor::from_vector(host, f, {rot / 2});
    }
    // Rotated q goes to the caches' dtype: in place when that is q's.
    const Tensor q_out = cache_dtype == dtype ? q : Tensor::empty(ctx, q.shape(), cache_dtype);
    rope_kv_write(q, k, v, Tensor::from_vector(ctx, positions, {s}), options, q_out, kc, vc);

    const double tol = std::max(test::dtype_tolerance(dtype), test::dtype_tolerance(cache_dtype));
    const auto got_q = q_out.to_vector<float>(), got_k = kc.to_vector<float>(), got_v = vc.to_vector<float>();
    std::set<int64_t> written;
    for (int64_t t = 0; t < s; ++t) {
      host_options.position_offset = positions[static_cast<size_t>(t)];
      const auto want_q = rope(q0.narrow(1, t, 1), host_options).to_vector<float>();
      const auto want_k = rope(k0.narrow(1, t, 1), host_options).to_vector<float>();
      const auto want_v = v0.narrow(1, t, 1).to_vector<float>();
      const int64_t p = positions[static_cast<size_t>(t)];
      for (int64_t bi = 0; bi < b; ++bi) {
        for (int64_t j = 0; j < hq * d; ++j) {
          const float got = got_q[static_cast<size_t>((bi * s + t) * hq * d + j)];
          const float want = want_q[static_cast<size_t>(bi * hq * d + j)];
          ASSERT_TRUE(std::abs(got - want) <= tol * std::max(1.0f, std::abs(want)))
              << "q b" << bi << " t" << t;
        }
        if (p < 0 || p >= capacity) continue;
        written.insert(bi * capacity + p);
        for (int64_t j = 0; j < hkv * d; ++j) {
          const auto at = static_cast<size_t>((bi * capacity + p) * hkv * d + j);
          const auto from = static_cast<size_t>(bi * hkv * d + j);
          ASSERT_TRUE(std::abs(got_k[at] - want_k[from]) <= tol * std::max(1.0f, std::abs(want_k[from])))
              << "k b" << bi << " position " << p;
          ASSERT_TRUE(std::abs(got_v[at] - want_v[from]) <= tol * std::max(1.0f, std::abs(want_v[from])))
              << "v b" << bi << " position " << p;
        }
      }
    }
    for (int64_t row = 0; row < b * capacity; ++row)
      if (!written.count(row)) ASSERT_TRUE(std::isnan(got_k[static_cast<size_t>(row * hkv * d)])) << row;
  }
};

TEST_P(RopeKvWrite, MatchesRopeThenCopy) {
  for (RopeStyle style : {RopeStyle::Neox, RopeStyle::Interleaved}) {
    run(style, 64, 64, false, DType::F16, {7, 2, 40}, 50);
    run(style, 64, 64, false, GetParam().dtype, {1, 0}, 4);
    run(style, 128, 96, true, DType::F32, {0, 31, 5, 6}, 32);
  }
}

TEST_P(RopeKvWrite, LargePositionsAndOneToken) {
  run(RopeStyle::Neox, 128, 128, false, DType::BF16, {30000}, 32768);
}

TEST_P(RopeKvWrite, PositionsOutsideTheCacheWriteNothing) {
  run(RopeStyle::Neox, 64, 64, false, DType::F16, {3, 9, -1, 4}, 9);
}

TEST_P(RopeKvWrite, RejectsBadArguments) {
  const auto make = [&](const Shape& shape, DType dtype = DType::F32) {
    return cast(Tensor::from_vector(ctx, test::random_floats(static_cast<size_t>(shape.numel()), 5), shape),
                dtype);
  };
  const Tensor q = make({1, 2, 4, 8}), k = make({1, 2, 2, 8}), v = make({1, 2, 2, 8});
  const Tensor kc = make({1, 16, 2, 8}), vc = make({1, 16, 2, 8});
  const Tensor pos = Tensor::from_vector(ctx, std::vector<int32_t>{0, 1}, {2});
  EXPECT_METALLIC_ERROR(
      rope_kv_write(q, k, v, Tensor::from_vector(ctx, std::vector<int32_t>{0}, {1}), {}, q, kc, vc),
      ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(
      rope_kv_write(q, k, v, Tensor::from_vector(ctx, std::vector<int64_t>{0, 1}, {2}), {}, q, kc, vc),
      ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(rope_kv_write(q, k, make({1, 2, 2, 8}, DType::F16), pos, {}, q, kc, vc),
                        ErrorCode::DTypeMismatch);
  EXPECT_METALLIC_ERROR(rope_kv_write(q, k, v, pos, {}, q, kc, make({1, 16, 3, 8})),
                        ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(rope_kv_write(q, k, v, pos, {}, make({1, 2, 4, 8}, DType::F16), kc, vc),
                        ErrorCode::DTypeMismatch);
  EXPECT_METALLIC_ERROR(rope_kv_write(q, k, v, pos, {RopeStyle::Neox, 10000.0f, 0, 5, {}}, q, kc, vc),
                        ErrorCode::InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Cpu, RopeKvWrite, ::testing::ValuesIn(test::float_cases(Device::cpu())),
                         test::dtype_case_name);
INSTANTIATE_TEST_SUITE_P(Cuda, RopeKvWrite, ::testing::ValuesIn(test::float_cases(Device::cuda())),
                         test::dtype_case_name);

}  // namespace
}  // namespace metallic
