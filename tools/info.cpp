#include <cstdio>

#include "command.h"
#include "metallic/core/device.h"

namespace metallic::cli {

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Print the version, the backends built in and the devices present");
  cmd->callback([] {
    std::printf("metallic %s\n", METALLIC_VERSION);
    std::printf("backends: cpu%s\n", cuda_built() ? ", cuda" : "");
    std::printf("devices:\n");
    for (const DeviceInfo& d : devices()) {
      std::printf("  %-8s %s, %.1f GiB total, %.1f GiB free\n", d.device.to_string().c_str(), d.name.c_str(),
                  static_cast<double>(d.total_memory) / (1 << 30),
                  static_cast<double>(d.free_memory) / (1 << 30));
    }
  });
}

}  // namespace metallic::cli
