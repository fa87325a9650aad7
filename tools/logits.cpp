#include <cstdio>

#include "command.h"
#include "loading.h"
#include "metallic/core/error.h"

namespace metallic::cli {

void add_logits_command(CLI::App& app) {
  struct Args {
    std::string model, device, ids;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "logits", "Print the logits after each given token id as JSON {\"logits\": [[...], ...]}");
  cmd->add_option("-m,--model", args->model, "GGUF model file (default: the built-in random model)");
  cmd->add_option("--ids", args->ids, "token ids to evaluate, e.g. \"1 2 3\" (no BOS is added)")->required();
  cmd->add_option("--device", args->device, "cpu, cuda or cuda:N");
  cmd->callback([args] {
    const std::vector<int32_t> ids = parse_token_ids(args->ids);
    check(!ids.empty(), ErrorCode::InvalidArgument, "--ids holds no ids");
    const LoadedModel loaded = load_model(args->model, args->device);
    KVCache cache = loaded.model->make_cache(static_cast<int64_t>(ids.size()));
    const Tensor logits = loaded.model->forward(ids, cache, true);
    const std::vector<float> values = logits.to_vector<float>();
    const auto vocab = static_cast<size_t>(loaded.model->config().n_vocab);
    std::string out = "{\"logits\": [";
    char number[32];
    for (size_t r = 0; r < ids.size(); ++r) {
      out += r ? ", [" : "[";
      for (size_t c = 0; c < vocab; ++c) {
        std::snprintf(number, sizeof number, c ? ", %.9g" : "%.9g",
                      static_cast<double>(values[r * vocab + c]));
        out += number;
      }
      out += "]";
    }
    std::printf("%s]}\n", out.c_str());
  });
}

}  // namespace metallic::cli
