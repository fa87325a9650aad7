// cuBLASLt plumbing shared by matmul and linear: the cached plan (descriptors + heuristic algorithm) per
// problem key, and the per-context workspace.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>

#include "metallic/core/context.h"

namespace metallic::cuda {

/// Everything that decides a cuBLASLt plan. All fields are int64 so the key hashes and compares as bytes.
struct LtKey {
  int64_t m, n, k, batch;  // the column-major problem D (m x n) = op(A) (m x k) op(B) (k x n)
  int64_t dtype;           // cudaDataType_t of A and B
  int64_t out_dtype;       // cudaDataType_t of C and D (f32 may take f16 or bf16 products)
  int64_t op_a, op_b;      // cublasOperation_t
  int64_t a_rows, a_cols, lda, b_rows, b_cols, ldb, ldc;
  int64_t stride_a, stride_b, stride_c;  // batch strides in elements
  int64_t beta_zero;
  int64_t align_a, align_b, align_c;  // bytes every pointer is aligned to
  bool operator==(const LtKey& o) const;
  size_t hash() const;
};

/// Descriptors and the chosen algorithm of one problem.
struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~LtPlan();
};

/// The plan for `key`, from the context's ResourceCache (built by the heuristic on a miss).
std::shared_ptr<LtPlan> lt_plan(const Context& ctx, const LtKey& key);
/// D = alpha op(A) op(B) + beta D on `stream` (D is C, in place).
void lt_run(const Context& ctx, const LtPlan& plan, const void* a, const void* b, void* c, float alpha,
            float beta, cudaStream_t stream);
/// The context's cuBLASLt workspace (allocated once, kept in the ResourceCache).
void* lt_workspace(const Context& ctx, size_t* bytes);

}  // namespace metallic::cuda
