// CPU reference of the fused linear: the prologue in double into an f32 copy of x, the product through the
// CPU linear (f32 GEMM), the epilogue in double. Every intermediate is stored in f32, as the unfused CPU ops
// store them for f32 activations, so an f32 model computes the same values either way.
#include "backend/fused_linear.h"

#include <cmath>

#include "backend/cpu/rows.h"
#include "backend/matmul.h"
#include "backend/scalar.h"
#include "metallic/core/context.h"
#include "metallic/core/memory_pool.h"

namespace metallic::cpu {

void fused_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const FusedLinearOptions& o,
                  const Tensor& out) {
  const int64_t m = x.dim(0), k = x.dim(1), n = weight.dim(0);
  const std::shared_ptr<Context>& ctx = x.context();
  MemoryPool& pool = ctx->pool();
  const MemoryPool::Mark mark = pool.mark();
  const Tensor xf = Tensor::empty(ctx, {m, k}, DType::F32, Storage::Pool),
               y = Tensor::empty(ctx, {m, n}, DType::F32, Storage::Pool);
  const std::vector<double> g = values_or(o.norm_weight, k, 1.0);
  backend::visit_dense(x.dtype(), "fused_linear", [&](auto tag) {
    using T = decltype(tag);
    std::vector<double> row(static_cast<size_t>(k));
    for (int64_t i = 0; i < m; ++i) {
      const T* px = x.data_as<T>() + i * x.stride(0);
      double ss = 0;
      for (int64_t j = 0; j < k; ++j) {
        const double v = backend::load(px[j]);
        row[static_cast<size_t>(j)] = v;
        ss += v * v;
      }
      const double inv = o.rms_norm ? 1.0 / std::sqrt(ss / static_cast<double>(k) + o.eps) : 1.0;
      float* pf = xf.data_as<float>() + i * k;
      for (int64_t j = 0; j < k; ++j) {
        const size_t e = static_cast<size_t>(j);
        pf[j] = static_cast<float>(o.rms_norm ? row[e] * inv * g[e] : row[e]);
      }
    }
  });
  cpu::linear(xf, weight, bias, y);
  const float* py = y.data_as<float>();
  backend::visit_dense(out.dtype(), "fused_linear", [&](auto tag) {
    using T = decltype(tag);
    T* po = out.data_as<T>();
    switch (o.epilogue) {
      case LinearEpilogue::Store:
        for (int64_t i = 0; i < m * n; ++i) po[i] = backend::store<T>(static_cast<double>(py[i]));
        break;
      case LinearEpilogue::Accumulate:
        for (int64_t i = 0; i < m * n; ++i)
          po[i] = backend::store<T>(static_cast<double>(backend::load(po[i])) + py[i]);
        break;
      case LinearEpilogue::SwiGLU: {
        const int64_t f = n / 2;
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < f; ++j) {
            const double gate = py[i * n + j], up = py[i * n + f + j];
            po[i * f + j] = backend::store<T>(gate / (1.0 + std::exp(-gate)) * up);
          }
        break;
      }
    }
  });
  pool.release(mark);
}

bool fused_linear_single_pass(const Tensor&, int64_t) { return true; }

}  // namespace metallic::cpu
