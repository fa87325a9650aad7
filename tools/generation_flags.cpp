#include "generation_flags.h"

#include <algorithm>
#include <cstdio>
#include <random>

namespace metallic::cli {

void GenerationFlags::add_to(CLI::App& cmd) {
  cmd.add_option("-m,--model", model, "GGUF model file (default: the built-in random model)");
  cmd.add_option("--device", device, "cpu, cuda or cuda:N (default: cuda:0 when present)");
  cmd.add_option("-c,--ctx", context, "context size in tokens (default: the model's, at most 4096)");
  cmd.add_option("-n,--n-predict", n_predict, "tokens to generate")->check(CLI::NonNegativeNumber);
  cmd.add_flag("--ignore-eos", ignore_eos, "keep generating past end-of-sequence tokens");
  cmd.add_option("--temp", sampler.temperature, "temperature (0: greedy)")->check(CLI::NonNegativeNumber);
  cmd.add_option("--top-k", sampler.top_k, "top-k (0: off)");
  cmd.add_option("--top-p", sampler.top_p, "top-p (1: off)");
  cmd.add_option("--min-p", sampler.min_p, "min-p (0: off)");
  cmd.add_option("--repeat-penalty", sampler.repeat_penalty, "penalty for repeated tokens (1: off)");
  cmd.add_option("--presence-penalty", sampler.presence_penalty, "presence penalty (0: off)");
  cmd.add_option("--frequency-penalty", sampler.frequency_penalty, "frequency penalty (0: off)");
  cmd.add_option("--repeat-last-n", sampler.penalty_window, "tokens the penalties look back at");
  cmd.add_option("--seed", sampler.seed, "random seed (default: random)")->each([this](const std::string&) {
    has_seed = true;
  });
  cmd.add_option("--stop", stops, "stop when this text appears (repeatable)");
}

GenerationOptions GenerationFlags::options() const {
  GenerationOptions o;
  o.max_tokens = n_predict;
  o.ignore_eos = ignore_eos;
  o.stop_strings = stops;
  o.sampler = sampler;
  if (!has_seed) o.sampler.seed = std::random_device{}();
  return o;
}

int64_t GenerationFlags::context_for(const Model& loaded) const {
  return context > 0 ? context : std::min<int64_t>(loaded.config().context_length, 4096);
}

void print_stats(const LoadedModel& loaded, const GenerationStats& s) {
  const auto rate = [](int64_t n, double sec) { return sec > 0 ? static_cast<double>(n) / sec : 0.0; };
  std::fprintf(
      stderr,
      "\nload %.2f s | prompt %lld tok, %.1f tok/s | decode %lld tok, %.1f tok/s | peak %s memory %.1f MiB "
      "| stop: %s\n",
      loaded.load_seconds, static_cast<long long>(s.prompt_tokens), rate(s.prompt_tokens, s.prompt_seconds),
      static_cast<long long>(s.generated_tokens), rate(s.generated_tokens, s.decode_seconds),
      loaded.context->device().to_string().c_str(), peak_mib(*loaded.context), s.stop_reason.c_str());
}

}  // namespace metallic::cli
