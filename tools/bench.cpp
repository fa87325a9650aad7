#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "command.h"
#include "loading.h"
#include "metallic/core/error.h"
#include "metallic/core/memory_pool.h"
#include "metallic/model/decode_step.h"
#include "metallic/ops/creation.h"
#include "metallic/ops/matmul.h"

namespace metallic::cli {
namespace {

struct Summary {
  double mean = 0, sd = 0;
};

Summary summarize(const std::vector<double>& v) {
  Summary s;
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / static_cast<double>(v.size() - 1)) : 0.0;
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Dense matrix-multiply rate of the device in TFLOP/s, the ceiling prefill is held against: 4096^3 in bf16 on
// a GPU (cuBLASLt), 1024^3 in f32 on the CPU (OpenBLAS).
double gemm_tflops(const std::shared_ptr<Context>& context) {
  const bool gpu = context->device().is_cuda();
  const int64_t n = gpu ? 4096 : 1024;
  const DType dtype = gpu ? DType::BF16 : DType::F32;
  const Tensor a = uniform(context, {n, n}, 1, -1.0, 1.0, dtype),
               b = uniform(context, {n, n}, 2, -1.0, 1.0, dtype);
  const Tensor out = Tensor::empty(context, {n, n}, dtype);
  // Ten products per sample, one wait: the rate of back-to-back GEMMs, as prefill issues them.
  constexpr int kPerSample = 10;
  std::vector<double> seconds;
  for (int i = 0; i < 7; ++i) {
    const auto t = std::chrono::steady_clock::now();
    for (int j = 0; j < kPerSample; ++j) matmul(a, b, out);
    context->synchronize();
    if (i >= 2) seconds.push_back(seconds_since(t) / kPerSample);
  }
  std::sort(seconds.begin(), seconds.end());
  return 2.0 * static_cast<double>(n * n * n) / seconds[seconds.size() / 2] / 1e12;
}

// Multiply-adds of prefilling `prompt` tokens, per token: every layer's matrices, attention over the half
// of the prompt each query sees on average, and the output projection of the last token.
double prefill_flops_per_token(const Model& model, int64_t prompt) {
  const ModelConfig& c = model.config();
  const double q = static_cast<double>(c.n_heads * c.head_dim),
               kv = static_cast<double>(c.n_kv_heads * c.head_dim);
  const double e = static_cast<double>(c.n_embd), ff = static_cast<double>(c.n_ff);
  const double per_layer = e * (q + 2 * kv) + q * e + 3 * e * ff;
  const double attention = 2 * q * static_cast<double>(prompt) / 2;
  const double head = e * static_cast<double>(c.n_vocab) / static_cast<double>(prompt);
  return 2.0 * (static_cast<double>(c.n_layers) * (per_layer + attention) + head);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  struct Args {
    std::string model, device;
    int64_t prompt = 512, generate = 128, batch = 512;
    int reps = 5;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench", "Measure prompt processing (pp) and generation (tg) speed");
  cmd->add_option("-m,--model", args->model, "GGUF model file (default: the built-in random model)");
  cmd->add_option("-p,--n-prompt", args->prompt, "prompt tokens per pp test")->check(CLI::PositiveNumber);
  cmd->add_option("-n,--n-gen", args->generate, "tokens per tg test")->check(CLI::PositiveNumber);
  cmd->add_option("-b,--batch-size", args->batch, "prompt tokens per forward pass")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--reps", args->reps, "repetitions")->check(CLI::PositiveNumber);
  cmd->add_option("--device", args->device, "cpu, cuda or cuda:N");
  cmd->callback([args] {
    const LoadedModel loaded = load_model(args->model, args->device);
    const double load_peak_mib = peak_mib(*loaded.context);
    const Model& model = *loaded.model;
    const ModelConfig& c = model.config();
    // A context of its own, so the copy buffers stay out of the model context's peak memory.
    const double copy_gbps =
        Context::create(loaded.context->device())->measure_copy_bandwidth(size_t{1} << 30);
    const double gemm_rate = gemm_tflops(Context::create(loaded.context->device()));
    const int64_t ctx = args->prompt + args->generate;
    std::vector<int32_t> prompt(static_cast<size_t>(args->prompt));
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 3) % c.n_vocab);
    std::vector<double> pp, tg;
    int64_t kv_element = 0;
    SamplingOptions greedy;
    greedy.temperature = 0;
    DecodeStep step(loaded.model, greedy);
    for (int rep = -1; rep < args->reps; ++rep) {  // rep -1 warms up kernels, plans, allocations and graphs
      KVCache cache = model.make_cache(ctx);
      kv_element = element_size(cache.dtype());
      auto t = std::chrono::steady_clock::now();
      const Tensor logits = model.prefill(prompt, cache, args->batch);
      loaded.context->synchronize();
      const double prefill = seconds_since(t);
      t = std::chrono::steady_clock::now();
      std::vector<int32_t> history = prompt;
      int32_t token = step.sample(logits, history);
      for (int64_t i = 0; i < args->generate; ++i) {
        history.push_back(token);
        token = step.next(token, history, cache);
      }
      const double decode = seconds_since(t);
      if (rep < 0) continue;
      pp.push_back(static_cast<double>(args->prompt) / prefill);
      tg.push_back(static_cast<double>(args->generate) / decode);
    }
    // A decode step reads the weights once and the KV cache up to the current position (on average the
    // middle).
    const double kv_bytes = 2.0 * static_cast<double>(c.n_layers * c.n_kv_heads * c.head_dim * kv_element) *
                            (static_cast<double>(args->prompt) + static_cast<double>(args->generate) / 2);
    const double step_bytes = static_cast<double>(model.decode_weight_bytes()) + kv_bytes;
    const Summary p = summarize(pp), g = summarize(tg);
    const std::string backend = loaded.context->device().to_string();
    std::printf("| model | size | params | backend | test | t/s | of roofline / GEMM rate |\n");
    std::printf("| --- | ---: | ---: | --- | --- | ---: | ---: |\n");
    const double gib = static_cast<double>(model.weight_bytes()) / (1 << 30);
    const double params = static_cast<double>(model.parameter_count()) / 1e6;
    const double pp_tflops = p.mean * prefill_flops_per_token(model, args->prompt) / 1e12;
    std::printf("| %s | %.2f GiB | %.1f M | %s | pp%lld | %.1f ± %.1f | %.2f |\n", c.name.c_str(), gib,
                params, backend.c_str(), static_cast<long long>(args->prompt), p.mean, p.sd,
                pp_tflops / gemm_rate);
    std::printf("| %s | %.2f GiB | %.1f M | %s | tg%lld | %.1f ± %.1f | %.2f |\n", c.name.c_str(), gib,
                params, backend.c_str(), static_cast<long long>(args->generate), g.mean, g.sd,
                g.mean * step_bytes / (copy_gbps * 1e9));
    const double weights_mib = static_cast<double>(model.weight_bytes()) / (1 << 20);
    const double kv_mib =
        static_cast<double>(2 * c.n_layers * ctx * c.n_kv_heads * c.head_dim * kv_element) / (1 << 20);
    std::printf("\ncopy bandwidth %.0f GB/s; decode reads %.1f MiB per token (roofline %.1f tok/s); %s\n",
                copy_gbps, step_bytes / (1 << 20), copy_gbps * 1e9 / step_bytes,
                step.captured() ? "decode step replayed as a CUDA graph" : "decode step launched eagerly");
    std::printf("GEMM rate %.3g TFLOP/s; prefill runs at %.3g TFLOP/s (batches of %lld tokens)\n", gemm_rate,
                pp_tflops, static_cast<long long>(args->batch));
    // On the CPU the weights stay in the mapped file, so only device contexts account for them.
    if (loaded.context->device().is_cuda())
      std::printf(
          "peak device memory %.1f MiB (%.1f while loading; scratch pool %.1f) = weights %.1f + KV cache "
          "%.1f + %.1f%%\n",
          peak_mib(*loaded.context), load_peak_mib,
          static_cast<double>(loaded.context->pool().reserved()) / (1 << 20), weights_mib, kv_mib,
          100.0 * (peak_mib(*loaded.context) / (weights_mib + kv_mib) - 1));
  });
}

}  // namespace metallic::cli
