// The subcommands of the metallic CLI; each file in tools/ adds one to the app.
#pragma once

#include <CLI/CLI.hpp>

namespace metallic::cli {

/// `metallic info`: version, backends, devices.
void add_info_command(CLI::App& app);
/// `metallic inspect FILE.gguf`: GGUF header, metadata and tensor table.
void add_inspect_command(CLI::App& app);
/// `metallic tokenize -m FILE.gguf TEXT` (ids as a JSON array) and `metallic detokenize -m FILE.gguf IDS...`.
void add_tokenize_commands(CLI::App& app);
/// `metallic run`: generate text from a prompt, streaming it.
void add_run_command(CLI::App& app);
/// `metallic chat`: interactive conversation in the model's chat format.
void add_chat_command(CLI::App& app);
/// `metallic logits`: the logits after each of the given ids, as JSON.
void add_logits_command(CLI::App& app);
/// `metallic synth`: write a random-weight GGUF in the shape of a real architecture.
void add_synth_command(CLI::App& app);
/// `metallic bench`: prompt-processing and generation speed, with decode's fraction of the memory roofline.
void add_bench_command(CLI::App& app);

}  // namespace metallic::cli
