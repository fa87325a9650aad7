// Loading a model for a CLI command: device choice, the built-in fallback, a progress bar, timing.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "metallic/core/context.h"
#include "metallic/model/model.h"
#include "metallic/model/tokenizer.h"

namespace metallic::cli {

/// A model ready to run, with its tokenizer and how long loading took.
struct LoadedModel {
  std::shared_ptr<Context> context;
  std::shared_ptr<const Model> model;
  std::shared_ptr<const Tokenizer> tokenizer;
  double load_seconds = 0;
  bool builtin = false;
};

/// The device named by `text`, or cuda:0 when a GPU is present and the CPU otherwise when `text` is empty.
Device choose_device(const std::string& text);
/// Loads `path` (the built-in random model, announced on stderr, when empty) onto `device`,
/// drawing a progress bar on stderr.
LoadedModel load_model(const std::string& path, const std::string& device);
/// Token ids written as decimal numbers separated by spaces; InvalidArgument for anything else.
std::vector<int32_t> parse_token_ids(const std::string& text);
/// Peak device memory of the context in MiB.
double peak_mib(const Context& context);

}  // namespace metallic::cli
