// Where memory lives and kernels run.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace metallic {

/// Kinds of device a backend exists for.
enum class DeviceType : uint8_t { Cpu, Cuda };

/// A device: its kind and, for CUDA, the ordinal.
struct Device {
  DeviceType type = DeviceType::Cpu;
  int index = 0;

  static Device cpu() { return {DeviceType::Cpu, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::Cuda, index}; }
  bool is_cpu() const { return type == DeviceType::Cpu; }
  bool is_cuda() const { return type == DeviceType::Cuda; }
  bool operator==(const Device&) const = default;
  /// "cpu" or "cuda:N".
  std::string to_string() const;
  /// Parses "cpu", "cuda" or "cuda:N"; InvalidArgument otherwise.
  static Device parse(std::string_view text);
};

/// A present device with its name and memory in bytes (free memory as of the query).
struct DeviceInfo {
  Device device;
  std::string name;
  int64_t total_memory = 0;
  int64_t free_memory = 0;
};

/// True when this build contains the CUDA backend.
bool cuda_built();
/// Number of usable CUDA devices (0 without the backend, a driver or a GPU).
int cuda_device_count();
/// Every device present: the CPU first, then each CUDA device.
std::vector<DeviceInfo> devices();

}  // namespace metallic
