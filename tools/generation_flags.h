// Flags shared by the generating commands (run, chat): model, device, context, sampling, stops.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "loading.h"
#include "metallic/model/generator.h"

namespace metallic::cli {

/// Parsed values of the shared flags.
struct GenerationFlags {
  std::string model, device;
  int64_t context = 0;  ///< 0: the model's trained context, capped at 4096
  int64_t n_predict = 128;
  bool ignore_eos = false;
  bool has_seed = false;
  std::vector<std::string> stops;
  SamplerOptions sampler;

  /// Registers the flags on `cmd`.
  void add_to(CLI::App& cmd);
  /// Generation options from the flags (a random seed when none was given).
  GenerationOptions options() const;
  /// The KV-cache size to allocate for `model`.
  int64_t context_for(const Model& loaded) const;
};

/// Prints the final statistics line on stderr.
void print_stats(const LoadedModel& loaded, const GenerationStats& stats);

}  // namespace metallic::cli
