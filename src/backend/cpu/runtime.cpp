#include "backend/runtime.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "metallic/core/error.h"

namespace metallic::backend {
namespace {

// Host memory aligned like device allocations so vectorised kernels never see a misaligned base.
constexpr size_t kAlignment = 256;

class CpuRuntime final : public Runtime {
 public:
  void* allocate(const Device&, size_t bytes, void*) const override {
    const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p =
        ::operator new (rounded == 0 ? kAlignment : rounded, std::align_val_t{kAlignment}, std::nothrow);
    check(p != nullptr, ErrorCode::OutOfMemory, "cpu: cannot allocate ", bytes, " bytes of host memory");
    return p;
  }
  void deallocate(const Device&, void* ptr, void*) const noexcept override {
    ::operator delete (ptr, std::align_val_t{kAlignment});
  }
  void copy(void* dst, const void* src, size_t bytes, void*) const override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  NativeHandles create_handles(const Device&) const override { return {}; }
  void destroy_handles(const Device&, const NativeHandles&) const noexcept override {}
  void synchronize(const NativeHandles&) const override {}
  void begin_capture(const NativeHandles&) const override {}
  std::shared_ptr<void> end_capture(const NativeHandles&, bool) const override { return nullptr; }
  void replay(const NativeHandles&, const std::shared_ptr<void>&) const override {
    fail(ErrorCode::Internal, "the CPU backend has no replayable executables");
  }
  std::vector<DeviceInfo> devices() const override {
    const int64_t page = sysconf(_SC_PAGESIZE);
    const int64_t cores = sysconf(_SC_NPROCESSORS_ONLN);
    return {DeviceInfo{Device::cpu(), "host cpu, " + std::to_string(cores) + " cores",
                       sysconf(_SC_PHYS_PAGES) * page, sysconf(_SC_AVPHYS_PAGES) * page}};
  }
};

}  // namespace

const Runtime& cpu_runtime() {
  static const CpuRuntime runtime;
  return runtime;
}

}  // namespace metallic::backend
