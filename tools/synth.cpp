#include <cstdio>

#include "command.h"
#include "metallic/core/error.h"
#include "metallic/model/synthetic.h"

namespace metallic::cli {

void add_synth_command(CLI::App& app) {
  struct Args {
    std::string preset = "qwen2.5-0.5b", type = "f16", output;
    uint64_t seed = 1;
  };
  auto args = std::make_shared<Args>();
  auto* cmd =
      app.add_subcommand("synth", "Write a GGUF with random weights in the shapes of a real architecture");
  std::string names;
  for (const std::string& n : SyntheticSpec::presets()) names += (names.empty() ? "" : ", ") + n;
  cmd->add_option("--preset", args->preset, "shape: " + names);
  cmd->add_option("--type", args->type, "weight type: f32, f16, bf16, q8_0, q4_0, q4_k, q6_k");
  cmd->add_option("-o,--output", args->output, "file to write")->required();
  cmd->add_option("--seed", args->seed, "random seed");
  cmd->callback([args] {
    const auto dtype = dtype_from_name(args->type);
    check(dtype.has_value(), ErrorCode::InvalidArgument, "unknown weight type '", args->type, "'");
    check(info(*dtype).ggml_type >= 0, ErrorCode::InvalidArgument, "weight type '", args->type,
          "' has no GGUF id (the grouped types are a device layout)");
    gguf::Writer writer;
    add_synthetic_model(writer, SyntheticSpec::preset(args->preset), uniform_weight_type(*dtype), args->seed);
    writer.write(args->output);
    std::fprintf(stderr, "wrote %s (%s, %s weights, random)\n", args->output.c_str(), args->preset.c_str(),
                 args->type.c_str());
  });
}

}  // namespace metallic::cli
