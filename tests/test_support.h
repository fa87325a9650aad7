// Helpers shared by the tests: fixture paths, backend-parameterised fixtures, seeded data, error checks.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "metallic/core/context.h"
#include "metallic/core/device.h"
#include "metallic/core/dtype.h"
#include "metallic/core/error.h"

namespace metallic {
/// Prints a device in test names and failure messages.
inline void PrintTo(const Device& device, std::ostream* os) { *os << device.to_string(); }
}  // namespace metallic

namespace metallic::test {

/// Path of `relative` inside the shared fixture folder (env METALLIC_SHARED, default ../shared).
inline std::filesystem::path shared_path(const std::string& relative) {
  const char* root = std::getenv("METALLIC_SHARED");
  std::filesystem::path base = root ? root : "../shared";
  return base / relative;
}

/// Fixture for tests parameterised by P: a Device, or a struct whose `device` member names one. SetUp makes
/// `ctx` on that device; a CUDA parameter skips when no GPU is present, so CPU-only machines stay green.
/// Instantiate with the prefixes Cpu and Cuda (the ctest labels filter on them).
template <class P>
class DeviceTest : public ::testing::TestWithParam<P> {
 protected:
  void SetUp() override {
    const Device& device = device_of(this->GetParam());
    if (device.is_cuda() && cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device present";
    ctx = Context::create(device);
  }
  std::shared_ptr<Context> ctx;

 private:
  static const Device& device_of(const Device& d) { return d; }
  template <class Q>
  static const Device& device_of(const Q& q) {
    return q.device;
  }
};

/// Fixture for tests that run once per backend (parameter: the Device).
using BackendTest = DeviceTest<Device>;

/// A backend and an element type: the parameter of tests that run per device and dtype.
struct DTypeCase {
  Device device;
  DType dtype;
};

/// Test-name suffix of a DTypeCase: the dtype's name.
inline std::string dtype_case_name(const ::testing::TestParamInfo<DTypeCase>& info) {
  return std::string(name(info.param.dtype));
}

/// The f32, f16 and bf16 cases on `device`.
inline std::vector<DTypeCase> float_cases(Device device) {
  return {{device, DType::F32}, {device, DType::F16}, {device, DType::BF16}};
}

/// `n` floats drawn uniformly from [lo, hi) with `seed` (std::mt19937, independent of the library).
inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

/// Largest |got - want| / max(|want|, floor); NaN anywhere gives NaN so `!(err <= tol)` fails.
inline double max_rel_error(const std::vector<float>& got, const std::vector<double>& want,
                            double floor = 1.0) {
  if (got.size() != want.size()) return NAN;
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = std::abs(static_cast<double>(got[i]) - want[i]) / std::max(std::abs(want[i]), floor);
    if (!(e <= worst)) worst = e;  // keeps NaN
  }
  return worst;
}

/// ||got - want|| / ||want|| in double; NaN when the sizes differ (so `!(err <= tol)` fails).
inline double relative_l2(std::span<const float> got, std::span<const float> want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    num += (got[i] - static_cast<double>(want[i])) * (got[i] - static_cast<double>(want[i]));
    den += static_cast<double>(want[i]) * want[i];
  }
  return got.size() == want.size() ? std::sqrt(num / den) : NAN;
}

/// Relative tolerance of a result computed in f32 and stored once in `dtype`.
inline double dtype_tolerance(DType dtype) {
  switch (dtype) {
    case DType::BF16: return 1e-2;
    case DType::F16: return 2e-3;
    default: return 1e-5;
  }
}

/// max_rel_error (with `floor`) where non-finite references must be matched exactly (NaN by NaN, inf by the
/// same inf).
inline double nonfinite_error(const std::vector<float>& got, const std::vector<double>& want,
                              double floor = 1.0) {
  std::vector<float> g;
  std::vector<double> w;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isfinite(want[i])) {
      g.push_back(got[i]);
      w.push_back(want[i]);
    } else if (!(std::isnan(want[i]) ? std::isnan(got[i]) : got[i] == want[i])) {
      return NAN;
    }
  }
  return max_rel_error(g, w, floor);
}

}  // namespace metallic::test

/// Asserts that `statement` throws metallic::Error with `expected_code`.
#define EXPECT_METALLIC_ERROR(statement, expected_code)                                         \
  do {                                                                                          \
    try {                                                                                       \
      statement;                                                                                \
      ADD_FAILURE() << #statement " did not throw";                                             \
    } catch (const ::metallic::Error& e_) {                                                     \
      EXPECT_EQ(e_.code(), expected_code) << #statement " threw the wrong code: " << e_.what(); \
    }                                                                                           \
  } while (0)
