// The subcommands of the metallic CLI; each file in tools/ adds one to the app.
#pragma once

#include <CLI/CLI.hpp>

namespace metallic::cli {

/// `metallic info`: version, backends, devices.
void add_info_command(CLI::App& app);
/// `metallic inspect FILE.gguf`: GGUF header, metadata and tensor table.
void add_inspect_command(CLI::App& app);

}  // namespace metallic::cli
