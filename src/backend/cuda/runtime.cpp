#include "backend/runtime.h"

#include <algorithm>

#include "backend/cuda/check.h"

namespace metallic::backend {
namespace {

// Selects the device for the calling thread; every entry point that touches a device goes through it.
void use_device(const Device& device) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    count = 0;
  }
  check(device.index >= 0 && device.index < count, ErrorCode::Device, "cuda:", device.index,
        " is not present (", count, " CUDA device(s) found)");
  MTL_CUDA_CHECK(cudaSetDevice(device.index));
}

class CudaRuntime final : public Runtime {
 public:
  void* allocate(const Device& device, size_t bytes, void* stream) const override {
    use_device(device);
    void* p = nullptr;
    // Whole 16-byte vectors: kernels load the aligned vectors that hold any byte of a row (block-quantized
    // rows need not start or end on 16 bytes), so the last one may run up to 15 bytes past the data.
    const size_t padded = (std::max<size_t>(bytes, 1) + 15) / 16 * 16;
    // Stream-ordered allocation: no device-wide synchronisation on free, unlike cudaFree.
    const cudaError_t status = cudaMallocAsync(&p, padded, static_cast<cudaStream_t>(stream));
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_bytes = 0, total = 0;
      cudaMemGetInfo(&free_bytes, &total);
      fail(ErrorCode::OutOfMemory, device.to_string(), ": cannot allocate ", bytes, " bytes (", free_bytes,
           " of ", total, " bytes free)");
    }
    MTL_CUDA_CHECK(status);
    return p;
  }
  void deallocate(const Device& device, void* ptr, void* stream) const noexcept override {
    if (cudaSetDevice(device.index) != cudaSuccess || cudaFreeAsync(ptr, static_cast<cudaStream_t>(stream)))
      cudaGetLastError();  // a failing free during teardown has no caller to report to
  }
  void copy(void* dst, const void* src, size_t bytes, void* stream) const override {
    if (bytes == 0) return;
    auto s = static_cast<cudaStream_t>(stream);
    MTL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s));
    MTL_CUDA_CHECK(cudaStreamSynchronize(s));
  }
  NativeHandles create_handles(const Device& device) const override {
    use_device(device);
    NativeHandles h;
    cudaStream_t stream = nullptr;
    MTL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    h.stream = stream;
    cublasHandle_t blas = nullptr;
    MTL_CUBLAS_CHECK(cublasCreate(&blas));
    MTL_CUBLAS_CHECK(cublasSetStream(blas, stream));
    h.blas = blas;
    cublasLtHandle_t lt = nullptr;
    MTL_CUBLAS_CHECK(cublasLtCreate(&lt));
    h.blas_lt = lt;
    return h;
  }
  void destroy_handles(const Device& device, const NativeHandles& h) const noexcept override {
    cudaSetDevice(device.index);
    if (h.blas_lt) cublasLtDestroy(static_cast<cublasLtHandle_t>(h.blas_lt));
    if (h.blas) cublasDestroy(static_cast<cublasHandle_t>(h.blas));
    if (h.stream) {
      cudaStreamSynchronize(static_cast<cudaStream_t>(h.stream));
      cudaStreamDestroy(static_cast<cudaStream_t>(h.stream));
    }
    cudaGetLastError();
  }
  void synchronize(const NativeHandles& h) const override {
    MTL_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(h.stream)));
  }
  void begin_capture(const NativeHandles& h) const override {
    MTL_CUDA_CHECK(
        cudaStreamBeginCapture(static_cast<cudaStream_t>(h.stream), cudaStreamCaptureModeThreadLocal));
  }
  std::shared_ptr<void> end_capture(const NativeHandles& h, bool ok) const override {
    cudaGraph_t graph = nullptr;
    const cudaError_t status = cudaStreamEndCapture(static_cast<cudaStream_t>(h.stream), &graph);
    std::shared_ptr<CUgraph_st> owned(graph, [](cudaGraph_t g) {
      if (g) cudaGraphDestroy(g);
    });
    if (!ok) {
      cudaGetLastError();
      return nullptr;
    }
    MTL_CUDA_CHECK(status);
    cudaGraphExec_t exec = nullptr;
    MTL_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    return std::shared_ptr<CUgraphExec_st>(exec, [](cudaGraphExec_t e) { cudaGraphExecDestroy(e); });
  }
  void replay(const NativeHandles& h, const std::shared_ptr<void>& executable) const override {
    MTL_CUDA_CHECK(
        cudaGraphLaunch(static_cast<cudaGraphExec_t>(executable.get()), static_cast<cudaStream_t>(h.stream)));
  }
  std::vector<DeviceInfo> devices() const override {
    std::vector<DeviceInfo> out;
    const int count = cuda_device_count();
    for (int i = 0; i < count; ++i) {
      use_device(Device::cuda(i));
      cudaDeviceProp prop{};
      MTL_CUDA_CHECK(cudaGetDeviceProperties(&prop, i));
      size_t free_bytes = 0, total = 0;
      MTL_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
      out.push_back(
          {Device::cuda(i), prop.name, static_cast<int64_t>(total), static_cast<int64_t>(free_bytes)});
    }
    return out;
  }
};

}  // namespace

const Runtime& cuda_runtime() {
  static const CudaRuntime runtime;
  return runtime;
}

}  // namespace metallic::backend

namespace metallic {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

}  // namespace metallic
