#include <cstdio>

#include "command.h"

namespace metallic::cli {

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Print the version, the backends built in and the devices present");
  cmd->callback([] { std::printf("metallic %s\n", METALLIC_VERSION); });
}

}  // namespace metallic::cli
