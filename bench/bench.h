// The benchmark harness: cases register with METALLIC_BENCH(name) { ... } and time themselves with
// h.time_ms(fn), then print one JSON line each with h.report(...). The harness measures the device's
// copy bandwidth and cuBLAS bf16 GEMM rate once at start, so every case can state its fraction of them.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "metallic/core/context.h"

namespace metallic::bench {

/// What every case gets: a CUDA context, a timer and the reporter.
class Harness {
 public:
  Harness();
  ~Harness();
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  /// The CUDA context every case works on (device 0).
  const std::shared_ptr<Context>& context() const { return ctx_; }
  /// The context's stream (a cudaStream_t); fn passed to time_ms must enqueue its work there.
  void* stream() const;

  /// Median over `iters` runs (after `warmup` runs) of fn's time on the context's stream, measured with
  /// CUDA events around each call. Before each timed run (outside the events) a 256 MiB buffer is read:
  /// the device is then still busy when fn's work is enqueued, so the host's launch path stays off the
  /// clock, and L2 holds only clean, unrelated lines, so inputs smaller than L2 are not cached between runs.
  double time_ms(const std::function<void()>& fn, int iters = 30, int warmup = 5);

  /// Prints one JSON line {op, shape, dtype, ms, GBps, frac_copy, TFLOPs, frac_gemm}. `bytes` is the
  /// memory traffic the op needs at least (0: not memory-bound, GBps/frac_copy null); `flops` the
  /// arithmetic (0: TFLOPs/frac_gemm null).
  void report(const std::string& op, const std::string& shape, const std::string& dtype, double ms,
              double bytes, double flops) const;

  /// Device-to-device copy bandwidth (bytes read + written per second, in GB/s) measured at start.
  double copy_gbps() const { return copy_gbps_; }
  /// cuBLAS bf16 GEMM rate (8192^3) in TFLOP/s measured at start.
  double gemm_tflops() const { return gemm_tflops_; }
  /// Measures both (called once by main before the cases).
  void calibrate();
  /// Ends a case (called by main after each): waits for its work, empties the context's arena and returns
  /// the device memory its freed tensors held, so that the next case allocates freshly mapped memory.
  void end_case();

 private:
  std::shared_ptr<Context> ctx_;
  void* flush_ = nullptr;  // device buffer read to evict L2
  double copy_gbps_ = 0, gemm_tflops_ = 0;
};

/// Enqueues on `stream` (a cudaStream_t) a read of the device buffer's `bytes` (a multiple of 16, well over
/// the L2 size) that leaves L2 holding only clean lines of it; the buffer's last 4 KiB are overwritten.
void evict_l2(const void* buffer, size_t bytes, void* stream);

using CaseFn = void (*)(Harness&);
/// Adds a case to the registry (used by METALLIC_BENCH); returns a dummy for static initialisation.
int register_case(const char* name, CaseFn fn);

}  // namespace metallic::bench

/// Defines and registers a benchmark case; the body sees `Harness& h`.
#define METALLIC_BENCH(case_name)                                                \
  static void metallic_bench_##case_name(::metallic::bench::Harness& h);         \
  [[maybe_unused]] static const int metallic_bench_reg_##case_name =             \
      ::metallic::bench::register_case(#case_name, &metallic_bench_##case_name); \
  static void metallic_bench_##case_name([[maybe_unused]] ::metallic::bench::Harness& h)
