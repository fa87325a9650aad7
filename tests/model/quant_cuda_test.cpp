// The CUDA dequantize kernel against the CPU reference, bit for bit, on random block bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "metallic/core/dtype.h"
#include "metallic/model/quant.h"

#if METALLIC_WITH_CUDA
#include <cuda_runtime.h>

#include "backend/cuda/check.h"
#include "backend/cuda/dequantize.h"
#endif

namespace metallic::quant {
namespace {

#if METALLIC_WITH_CUDA
bool have_device() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

// Equal bits, or NaN on both sides: random scale bytes include NaN halves, and NaN payloads after a
// multiplication are not specified to agree between the CPU and the GPU.
bool same(float a, float b) {
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y || (std::isnan(a) && std::isnan(b));
}
#endif

TEST(CudaDequantize, MatchesCpu) {
#if METALLIC_WITH_CUDA
  if (!have_device()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(99);
  int checked = 0;
  for (int t = 0; t < kDTypeCount; ++t) {
    const auto dt = static_cast<DType>(t);
    if (!can_dequantize(dt)) continue;
    SCOPED_TRACE(std::string(name(dt)));
    // An odd block count so the last thread block of the launch is partly idle.
    const int64_t n = info(dt).block_size * 1001;
    std::vector<uint8_t> bytes(static_cast<size_t>(storage_bytes(dt, n)));
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    std::vector<float> cpu(static_cast<size_t>(n));
    dequantize(dt, bytes.data(), cpu.data(), n);

    void* src = nullptr;
    float* dst = nullptr;
    MTL_CUDA_CHECK(cudaMalloc(&src, bytes.size()));
    MTL_CUDA_CHECK(cudaMalloc(&dst, cpu.size() * sizeof(float)));
    MTL_CUDA_CHECK(cudaMemcpy(src, bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
    MTL_CUDA_CHECK(cudaMemset(dst, 0xff, cpu.size() * sizeof(float)));  // poison: NaN everywhere
    cuda::dequantize(dt, src, dst, n, nullptr);
    std::vector<float> gpu(cpu.size());
    MTL_CUDA_CHECK(cudaMemcpy(gpu.data(), dst, gpu.size() * sizeof(float), cudaMemcpyDeviceToHost));
    MTL_CUDA_CHECK(cudaFree(src));
    MTL_CUDA_CHECK(cudaFree(dst));

    size_t mismatches = 0, first = 0;
    for (size_t i = 0; i < cpu.size(); ++i)
      if (!same(cpu[i], gpu[i]) && mismatches++ == 0) first = i;
    EXPECT_EQ(mismatches, 0u) << "first at " << first << ": cpu " << cpu[first] << " gpu " << gpu[first];
    ++checked;
  }
  EXPECT_GE(checked, 15);
#else
  GTEST_SKIP() << "built without CUDA";
#endif
}

}  // namespace
}  // namespace metallic::quant
