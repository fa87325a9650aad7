// Registry, calibration (copy bandwidth, cuBLAS GEMM rate), timing and JSON reporting; main() runs the
// registered cases, all of them or those whose name contains --filter.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/runtime.h"
#include "bench.h"
#include "metallic/core/device.h"
#include "metallic/core/memory_pool.h"

namespace metallic::bench {
namespace {

struct Case {
  std::string name;
  CaseFn fn;
};

std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

constexpr size_t kFlushBytes = size_t{256} << 20;

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

int register_case(const char* name, CaseFn fn) {
  registry().push_back({name, fn});
  return 0;
}

Harness::Harness() {
  ctx_ = Context::create(Device::cuda(0));
  MTL_CUDA_CHECK(cudaMalloc(&flush_, kFlushBytes));
  MTL_CUDA_CHECK(cudaMemset(flush_, 0, kFlushBytes));
}

Harness::~Harness() {
  if (flush_) cudaFree(flush_);
}

void* Harness::stream() const { return ctx_->native().stream; }

double Harness::time_ms(const std::function<void()>& fn, int iters, int warmup) {
  auto s = static_cast<cudaStream_t>(stream());
  for (int i = 0; i < warmup; ++i) fn();
  MTL_CUDA_CHECK(cudaStreamSynchronize(s));
  cudaEvent_t start, stop;
  MTL_CUDA_CHECK(cudaEventCreate(&start));
  MTL_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> times;
  for (int i = 0; i < iters; ++i) {
    evict_l2(flush_, kFlushBytes, s);
    MTL_CUDA_CHECK(cudaEventRecord(start, s));
    fn();
    MTL_CUDA_CHECK(cudaEventRecord(stop, s));
    MTL_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    MTL_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  // The per-step arena is for temporaries of one step; each timed call is one step.
  ctx_->pool().reset();
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  return n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
}

void Harness::end_case() {
  ctx_->synchronize();
  ctx_->pool().reset();
  // Tensors go back to the stream-ordered allocator's pool, which would hand their memory to the next case.
  // Returning it makes each case independent of those before it, as the PyTorch side is after its
  // empty_cache() per module: in full runs on an H200, bf16 1x4096x11008 read 0.854 / 0.808 of copy after
  // the earlier cases' memory and 0.856 / 0.858 on fresh memory (0.864-0.871 when run alone).
  cudaMemPool_t pool = nullptr;
  MTL_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, ctx_->device().index));
  MTL_CUDA_CHECK(cudaMemPoolTrimTo(pool, 0));  // the frees were queued on the stream synchronized above
}

void Harness::report(const std::string& op, const std::string& shape, const std::string& dtype, double ms,
                     double bytes, double flops) const {
  const double gbps = bytes > 0 ? bytes / (ms * 1e-3) / 1e9 : NAN;
  const double tflops = flops > 0 ? flops / (ms * 1e-3) / 1e12 : NAN;
  std::printf(
      "{\"op\": %s, \"shape\": %s, \"dtype\": %s, \"ms\": %s, \"GBps\": %s, \"frac_copy\": %s, "
      "\"TFLOPs\": %s, \"frac_gemm\": %s}\n",
      json_string(op).c_str(), json_string(shape).c_str(), json_string(dtype).c_str(),
      json_number(ms).c_str(), json_number(gbps).c_str(), json_number(gbps / copy_gbps_).c_str(),
      json_number(tflops).c_str(), json_number(tflops / gemm_tflops_).c_str());
  std::fflush(stdout);
}

void Harness::calibrate() {
  auto s = static_cast<cudaStream_t>(stream());
  {
    // Device-to-device copy of 1 GiB: 2 GiB of traffic (read + write) per copy.
    const size_t bytes = size_t{1} << 30;
    void *src = nullptr, *dst = nullptr;
    MTL_CUDA_CHECK(cudaMalloc(&src, bytes));
    MTL_CUDA_CHECK(cudaMalloc(&dst, bytes));
    MTL_CUDA_CHECK(cudaMemsetAsync(src, 1, bytes, s));
    const double ms =
        time_ms([&] { MTL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s)); });
    copy_gbps_ = 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
    cudaFree(src);
    cudaFree(dst);
  }
  {
    // cuBLAS bf16 GEMM 8192^3 with f32 accumulation: the reference rate for matmul-like cases.
    const int n = 8192;
    const size_t bytes = size_t{n} * n * 2;
    void *a = nullptr, *b = nullptr, *c = nullptr;
    MTL_CUDA_CHECK(cudaMalloc(&a, bytes));
    MTL_CUDA_CHECK(cudaMalloc(&b, bytes));
    MTL_CUDA_CHECK(cudaMalloc(&c, bytes));
    MTL_CUDA_CHECK(cudaMemsetAsync(a, 0, bytes, s));
    MTL_CUDA_CHECK(cudaMemsetAsync(b, 0, bytes, s));
    cublasHandle_t handle;
    MTL_CUBLAS_CHECK(cublasCreate(&handle));
    MTL_CUBLAS_CHECK(cublasSetStream(handle, s));
    const float alpha = 1.f, beta = 0.f;
    const double ms = time_ms([&] {
      MTL_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b,
                                    CUDA_R_16BF, n, &beta, c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT));
    });
    gemm_tflops_ = 2.0 * n * n * static_cast<double>(n) / (ms * 1e-3) / 1e12;
    cublasDestroy(handle);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
  }
  const auto infos = devices();
  std::string device_name = infos.size() > 1 ? infos[1].name : "cuda";
  std::printf("{\"calibration\": true, \"device\": %s, \"copy_GBps\": %s, \"gemm_TFLOPs\": %s}\n",
              json_string(device_name).c_str(), json_number(copy_gbps_).c_str(),
              json_number(gemm_tflops_).c_str());
  std::fflush(stdout);
}

}  // namespace metallic::bench

int main(int argc, char** argv) {
  using namespace metallic::bench;
  std::string filter;
  bool list = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--filter" && i + 1 < argc) {
      filter = argv[++i];
    } else if (arg.rfind("--filter=", 0) == 0) {
      filter = arg.substr(9);
    } else if (arg == "--list") {
      list = true;
    } else {
      std::fprintf(stderr, "usage: %s [--filter SUBSTRING] [--list]\n", argv[0]);
      return 2;
    }
  }
  auto cases = registry();
  std::sort(cases.begin(), cases.end(), [](const Case& a, const Case& b) { return a.name < b.name; });
  if (list) {
    for (const Case& c : cases) std::printf("%s\n", c.name.c_str());
    return 0;
  }
  if (metallic::cuda_device_count() == 0) {
    std::fprintf(stderr, "metallic_bench: no CUDA device\n");
    return 1;
  }
  int failures = 0;
  try {
    Harness h;
    h.calibrate();
    for (const Case& c : cases) {
      if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
      std::fprintf(stderr, "[bench] %s\n", c.name.c_str());
      try {
        c.fn(h);
      } catch (const std::exception& e) {
        ++failures;
        std::fprintf(stderr, "[bench] %s failed: %s\n", c.name.c_str(), e.what());
      }
      h.end_case();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "metallic_bench: %s\n", e.what());
    return 1;
  }
  return failures ? 1 : 0;
}
