#include "metallic/core/device.h"

#include <charconv>

#include "backend/runtime.h"
#include "metallic/core/error.h"

namespace metallic {

std::string Device::to_string() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

Device Device::parse(std::string_view text) {
  if (text == "cpu") return cpu();
  if (text == "cuda" || text == "gpu") return cuda(0);
  if (text.starts_with("cuda:")) {
    const std::string_view digits = text.substr(5);
    int index = -1;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (ec == std::errc() && end == digits.data() + digits.size() && index >= 0) return cuda(index);
  }
  fail(ErrorCode::InvalidArgument, "unknown device '", text, "' (expected cpu, cuda or cuda:N)");
}

bool cuda_built() { return METALLIC_WITH_CUDA != 0; }

#if !METALLIC_WITH_CUDA
int cuda_device_count() { return 0; }
#endif

std::vector<DeviceInfo> devices() {
  std::vector<DeviceInfo> out = backend::runtime(DeviceType::Cpu).devices();
  if (cuda_built()) {
    for (DeviceInfo& d : backend::runtime(DeviceType::Cuda).devices()) out.push_back(std::move(d));
  }
  return out;
}

}  // namespace metallic
