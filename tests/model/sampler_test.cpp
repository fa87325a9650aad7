#include "metallic/model/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "test_support.h"

namespace metallic {
namespace {

SamplerOptions plain(float temperature, uint64_t seed = 1) {
  SamplerOptions o;
  o.temperature = temperature;
  o.top_k = 0;
  o.top_p = 1.0f;
  o.min_p = 0.0f;
  o.seed = seed;
  return o;
}

std::vector<float> log_probs(const std::vector<double>& p) {
  std::vector<float> z;
  for (double x : p) z.push_back(static_cast<float>(std::log(x)));
  return z;
}

std::map<int32_t, int> histogram(Sampler& s, const std::vector<float>& logits, int draws) {
  std::map<int32_t, int> h;
  for (int i = 0; i < draws; ++i) ++h[s.sample(logits)];
  return h;
}

TEST(Sampler, ArgmaxTakesTheLowestIdOnTiesAndSkipsNaN) {
  EXPECT_EQ(argmax(std::vector<float>{1, 3, 3, 2}), 1);
  EXPECT_EQ(argmax(std::vector<float>{NAN, -1, NAN}), 1);
  EXPECT_METALLIC_ERROR(argmax(std::vector<float>{NAN}), ErrorCode::InvalidArgument);
}

TEST(Sampler, ZeroTemperatureIsGreedy) {
  Sampler s(plain(0.0f));
  EXPECT_EQ(s.sample(std::vector<float>{0.1f, 5.0f, 4.9f}), 1);
}

TEST(Sampler, DrawsFollowTheSoftmax) {
  Sampler s(plain(1.0f, 7));
  const auto h = histogram(s, log_probs({0.5, 0.3, 0.2}), 20000);
  // Binomial standard deviations are about 0.0035; allow 5 of them.
  EXPECT_NEAR(h.at(0) / 20000.0, 0.5, 0.018);
  EXPECT_NEAR(h.at(1) / 20000.0, 0.3, 0.018);
  EXPECT_NEAR(h.at(2) / 20000.0, 0.2, 0.018);
}

TEST(Sampler, TemperatureSharpens) {
  Sampler s(plain(0.5f, 3));
  // p^(1/T) normalised: 0.25, 0.0625 -> 0.8, 0.2.
  const auto h = histogram(s, log_probs({0.5, 0.25}), 20000);
  EXPECT_NEAR(h.at(0) / 20000.0, 0.8, 0.015);
}

TEST(Sampler, TruncationsDropTheTail) {
  SamplerOptions k = plain(1.0f);
  k.top_k = 2;
  Sampler sk(k);
  EXPECT_FALSE(histogram(sk, log_probs({0.4, 0.35, 0.25}), 2000).contains(2));
  SamplerOptions p = plain(1.0f);
  p.top_p = 0.7f;  // 0.5 + 0.3 reaches 0.7: ids 2 and 3 go
  Sampler sp(p);
  const auto hp = histogram(sp, log_probs({0.5, 0.3, 0.15, 0.05}), 2000);
  EXPECT_FALSE(hp.contains(2) || hp.contains(3));
  EXPECT_TRUE(hp.contains(1));
  SamplerOptions m = plain(1.0f);
  m.min_p = 0.2f;  // threshold 0.12: id 2 (0.1) goes
  Sampler sm(m);
  const auto hm = histogram(sm, log_probs({0.6, 0.3, 0.1}), 2000);
  EXPECT_FALSE(hm.contains(2));
  EXPECT_TRUE(hm.contains(1));
}

TEST(Sampler, PenaltiesLookAtRecentTokens) {
  SamplerOptions o = plain(0.0f);
  o.repeat_penalty = 1.5f;  // 2.0 / 1.5 = 1.33 < 1.9
  Sampler s(o);
  s.accept(0);
  EXPECT_EQ(s.sample(std::vector<float>{2.0f, 1.9f}), 1);
  SamplerOptions f = plain(0.0f);
  f.frequency_penalty = 0.3f;  // two sightings: 2.0 - 0.6 < 1.5
  f.penalty_window = 2;
  Sampler sf(f);
  sf.accept(0);
  sf.accept(0);
  EXPECT_EQ(sf.sample(std::vector<float>{2.0f, 1.5f}), 1);
  sf.accept(1);
  sf.accept(1);  // id 0 has left the window of two
  EXPECT_EQ(sf.sample(std::vector<float>{2.0f, 1.5f}), 0);
  SamplerOptions pr = plain(0.0f);
  pr.presence_penalty = 1.0f;
  Sampler sp(pr);
  sp.accept(0);
  sp.accept(0);
  EXPECT_EQ(sp.sample(std::vector<float>{2.0f, 1.5f}), 1);  // 2.0 - 1.0 once, however often seen
}

TEST(Sampler, SameSeedSameTokens) {
  const std::vector<float> z = log_probs({0.2, 0.2, 0.2, 0.2, 0.2});
  Sampler a(plain(1.0f, 42)), b(plain(1.0f, 42)), c(plain(1.0f, 43));
  std::vector<int32_t> ta, tb, tc;
  for (int i = 0; i < 64; ++i) {
    ta.push_back(a.sample(z));
    tb.push_back(b.sample(z));
    tc.push_back(c.sample(z));
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
}

TEST(Sampler, InvalidSettingsAreErrors) {
  SamplerOptions o;
  o.top_p = 0.0f;
  EXPECT_METALLIC_ERROR(Sampler{o}, ErrorCode::InvalidArgument);
  o = {};
  o.repeat_penalty = 0.0f;
  EXPECT_METALLIC_ERROR(Sampler{o}, ErrorCode::InvalidArgument);
  o = {};
  o.temperature = NAN;
  EXPECT_METALLIC_ERROR(Sampler{o}, ErrorCode::InvalidArgument);
}

}  // namespace
}  // namespace metallic
