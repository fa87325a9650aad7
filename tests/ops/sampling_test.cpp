#include "metallic/ops/sampling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "test_support.h"

namespace metallic {
namespace {

// Runs sample_token on `ctx` for one draw number.
int32_t sample_on(const std::shared_ptr<Context>& ctx, const std::vector<float>& logits,
                  const std::vector<int32_t>& recent, int64_t draw, const SamplingOptions& o) {
  const Tensor z = Tensor::from_vector(ctx, logits, {1, static_cast<int64_t>(logits.size())});
  const Tensor r =
      recent.empty() ? Tensor() : Tensor::from_vector(ctx, recent, {static_cast<int64_t>(recent.size())});
  const Tensor out = Tensor::empty(ctx, {1}, DType::I32);
  sample_token(z, r, Tensor::from_vector(ctx, std::vector<int64_t>{draw}, {1}), o, out);
  return out.to_vector<int32_t>()[0];
}

SamplingOptions options(float temperature, int top_k, float top_p, float min_p) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  o.min_p = min_p;
  o.seed = 11;
  return o;
}

TEST(Sampling, TopKKeepsTheLowestIdsAmongEqualLogits) {
  const auto cpu = Context::create(Device::cpu());
  // Five equal logits, top-k 2: only ids 0 and 1 may come out.
  const std::vector<float> z{1, 1, 1, 1, 1};
  for (int64_t draw = 0; draw < 200; ++draw)
    EXPECT_LT(sample_on(cpu, z, {}, draw, options(1.0f, 2, 1.0f, 0.0f)), 2);
}

TEST(Sampling, NothingFiniteGivesMinusOne) {
  const auto cpu = Context::create(Device::cpu());
  const std::vector<float> z{NAN, -INFINITY, NAN};
  EXPECT_EQ(sample_on(cpu, z, {}, 0, options(0.0f, 0, 1.0f, 0.0f)), -1);
  EXPECT_EQ(sample_on(cpu, z, {}, 0, options(1.0f, 40, 0.9f, 0.05f)), -1);
}

TEST(Sampling, RejectsBadArguments) {
  const auto cpu = Context::create(Device::cpu());
  const Tensor z = Tensor::from_vector(cpu, std::vector<float>{1, 2}, {2});
  const Tensor draw = Tensor::from_vector(cpu, std::vector<int64_t>{0}, {1});
  const Tensor out = Tensor::empty(cpu, {1}, DType::I32);
  EXPECT_METALLIC_ERROR(sample_token(Tensor::from_vector(cpu, std::vector<float>{1, 2, 3, 4}, {2, 2}), {},
                                     draw, options(1, 0, 1, 0), out),
                        ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(
      sample_token(z, {}, Tensor::from_vector(cpu, std::vector<int32_t>{0}, {1}), options(1, 0, 1, 0), out),
      ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(sample_token(z, {}, draw, options(NAN, 0, 1, 0), out), ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(sample_token(z, {}, draw, options(1, 0, 0, 0), out), ErrorCode::InvalidArgument);
}

// The CUDA kernels sort and truncate on the device; for every setting they must pick the CPU's token.
TEST(CudaSampling, PicksTheSameTokensAsTheCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device present";
  const auto cpu = Context::create(Device::cpu()), gpu = Context::create(Device::cuda());
  std::vector<SamplingOptions> settings{options(0.0f, 0, 1.0f, 0.0f),    options(0.8f, 40, 0.95f, 0.05f),
                                        options(1.0f, 0, 1.0f, 0.0f),    options(1.3f, 0, 0.5f, 0.0f),
                                        options(0.5f, 1000, 1.0f, 0.2f), options(0.7f, 1, 1.0f, 0.0f)};
  SamplingOptions penalised = options(0.9f, 20, 0.9f, 0.0f);
  penalised.repeat_penalty = 1.3f;
  penalised.presence_penalty = 0.4f;
  penalised.frequency_penalty = 0.2f;
  settings.push_back(penalised);
  SamplingOptions greedy_penalised = penalised;
  greedy_penalised.temperature = 0;
  settings.push_back(greedy_penalised);
  for (int64_t v : {7, 1000, 152064}) {
    std::vector<float> z = test::random_floats(static_cast<size_t>(v), static_cast<uint32_t>(v), -4.0f, 4.0f);
    // Ties, a NaN and -inf entries: the sort order and the NaN rule must agree too.
    for (size_t i = 0; i + 3 < z.size(); i += 97) z[i + 1] = z[i];
    z[z.size() / 2] = NAN;
    z[z.size() / 3] = -INFINITY;
    std::vector<int32_t> recent;
    for (int64_t i = 0; i < 30; ++i) recent.push_back(static_cast<int32_t>((i * 131) % v));
    recent.push_back(-1);
    for (size_t si = 0; si < settings.size(); ++si)
      for (int64_t draw = 0; draw < 40; ++draw)
        ASSERT_EQ(sample_on(gpu, z, recent, draw, settings[si]),
                  sample_on(cpu, z, recent, draw, settings[si]))
            << "V " << v << " setting " << si << " draw " << draw;
  }
}

// Greedy reads the row in 16-byte pieces when it can: the first of equal maxima must win wherever they sit
// (vector body or scalar tail), also for rows that start off the 16-byte grid.
TEST(CudaSampling, GreedyTakesTheFirstOfEqualMaxima) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device present";
  const auto gpu = Context::create(Device::cuda());
  for (int64_t v : {5, 1027, 152066}) {
    for (int64_t offset : {0, 1}) {
      std::vector<float> z = test::random_floats(static_cast<size_t>(v + 1), 7, -4.0f, 4.0f);
      const auto first = static_cast<size_t>(offset + v / 2), last = static_cast<size_t>(offset + v - 1);
      z[first] = z[last] = 10.0f;
      z[static_cast<size_t>(offset)] = NAN;
      const Tensor row = Tensor::from_vector(gpu, z, {1, v + 1}).narrow(1, offset, v);
      const Tensor out = Tensor::empty(gpu, {1}, DType::I32);
      sample_token(row, {}, Tensor::from_vector(gpu, std::vector<int64_t>{0}, {1}),
                   options(0.0f, 0, 1.0f, 0.0f), out);
      EXPECT_EQ(out.to_vector<int32_t>()[0], v / 2) << "V " << v << " offset " << offset;
    }
  }
  // A row long enough to be split between blocks: equal maxima at every one of a run of neighbours (some
  // pair of them straddles a slice boundary wherever the slices fall), then a row of -inf and NaN only.
  const int64_t v = 152066;
  std::vector<float> z = test::random_floats(static_cast<size_t>(v), 8, -4.0f, 4.0f);
  for (size_t i = 20000; i < 40000; i += 1) z[i] = 10.0f;
  const auto greedy = [&](const std::vector<float>& row) {
    const Tensor out = Tensor::empty(gpu, {1}, DType::I32);
    sample_token(Tensor::from_vector(gpu, row, {1, v}), {},
                 Tensor::from_vector(gpu, std::vector<int64_t>{0}, {1}), options(0.0f, 0, 1.0f, 0.0f), out);
    return out.to_vector<int32_t>()[0];
  };
  EXPECT_EQ(greedy(z), 20000);
  std::vector<float> none(static_cast<size_t>(v), -INFINITY);
  none[77777] = NAN;
  EXPECT_EQ(greedy(none), -1);
}

}  // namespace
}  // namespace metallic
