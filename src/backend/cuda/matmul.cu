// CUDA matrix products through cuBLASLt. The row-major problem out[M,N] = A[M,K] B[K,N] is posed to the
// column-major library as out^T = B^T A^T (or directly when out itself is column-major), each operand's
// layout read off its strides: a view with unit column stride is a column-major matrix of its transpose,
// one with unit row stride is column-major as is. Batches with one uniform stride per operand go in one
// strided-batch call; other batch dimensions are looped. The descriptors and the heuristic's algorithm are
// cached per problem in the context's ResourceCache, next to one 32 MiB workspace per context.
#include <cstring>
#include <vector>

#include "backend/cuda/launch.h"
#include "backend/cuda/matmul_lt.h"
#include "backend/matmul.h"
#include "metallic/core/resource_cache.h"
#include "metallic/ops/copy.h"

namespace metallic::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

struct WorkspaceKey {
  int device;
  bool operator==(const WorkspaceKey&) const = default;
  size_t hash() const { return hash_fields(device, std::string_view("cublaslt-workspace")); }
};

struct Workspace {
  void* ptr = nullptr;
  size_t bytes = 0;
  ~Workspace() {
    if (ptr) cudaFree(ptr);  // synchronises: no GEMM still uses it
  }
};

/// One column-major operand as cuBLASLt sees it.
struct LtOperand {
  cublasOperation_t op = CUBLAS_OP_N;
  int64_t rows = 0, cols = 0, ld = 0;  // the stored matrix (before op)
};

/// Logical matrix X (p x r, element (i, j) at i*sr + j*sc) as a column-major operand, if possible.
bool lt_operand(int64_t p, int64_t r, int64_t sr, int64_t sc, LtOperand& o) {
  if ((sr == 1 || p == 1) && (r == 1 || sc >= p) && (r == 1 || sc > 0)) {
    o = {CUBLAS_OP_N, p, r, r == 1 ? p : sc};
    return true;
  }
  if ((sc == 1 || r == 1) && (p == 1 || sr >= r) && (p == 1 || sr > 0)) {
    o = {CUBLAS_OP_T, r, p, p == 1 ? r : sr};
    return true;
  }
  return false;
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: fail(ErrorCode::NotSupported, "matmul: dtype ", name(t));
  }
}

/// Largest power of two (at most 256) dividing every value.
int64_t alignment_of(std::initializer_list<int64_t> values) {
  int64_t a = 256;
  for (int64_t v : values)
    while (a > 1 && v % a != 0) a /= 2;
  return a;
}

}  // namespace

void* lt_workspace(const Context& ctx, size_t* bytes) {
  auto& c = const_cast<Context&>(ctx);
  auto ws = c.cache().get_or_create<Workspace>(WorkspaceKey{ctx.device().index}, [&] {
    auto w = std::make_shared<Workspace>();
    MTL_CUDA_CHECK(cudaMalloc(&w->ptr, kWorkspaceBytes));
    w->bytes = kWorkspaceBytes;
    return w;
  });
  *bytes = ws->bytes;
  return ws->ptr;  // the cache keeps it; an eviction frees it only after synchronising
}

bool LtKey::operator==(const LtKey& o) const { return std::memcmp(this, &o, sizeof(LtKey)) == 0; }
size_t LtKey::hash() const {
  size_t h = 0;
  const auto* w = reinterpret_cast<const uint64_t*>(this);
  for (size_t i = 0; i < sizeof(LtKey) / 8; ++i) hash_combine(h, w[i]);
  return h;
}

LtPlan::~LtPlan() {
  if (a) cublasLtMatrixLayoutDestroy(a);
  if (b) cublasLtMatrixLayoutDestroy(b);
  if (c) cublasLtMatrixLayoutDestroy(c);
  if (desc) cublasLtMatmulDescDestroy(desc);
}

std::shared_ptr<LtPlan> lt_plan(const Context& ctx, const LtKey& key) {
  auto& c = const_cast<Context&>(ctx);
  return c.cache().get_or_create<LtPlan>(key, [&] {
    auto plan = std::make_shared<LtPlan>();
    const auto t = static_cast<cudaDataType_t>(key.dtype), t_out = static_cast<cudaDataType_t>(key.out_dtype);
    // f32 stays f32: CUBLAS_COMPUTE_32F never rounds inputs to TF32.
    MTL_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = static_cast<cublasOperation_t>(key.op_a),
                            tb = static_cast<cublasOperation_t>(key.op_b);
    MTL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    MTL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    auto layout = [&](cublasLtMatrixLayout_t* l, cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld,
                      int64_t stride) {
      MTL_CUBLAS_CHECK(
          cublasLtMatrixLayoutCreate(l, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
      if (key.batch > 1) {
        const int32_t count = static_cast<int32_t>(key.batch);
        MTL_CUBLAS_CHECK(
            cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
        MTL_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                          &stride, sizeof stride));
      }
    };
    layout(&plan->a, t, key.a_rows, key.a_cols, key.lda, key.stride_a);
    layout(&plan->b, t, key.b_rows, key.b_cols, key.ldb, key.stride_b);
    layout(&plan->c, t_out, key.m, key.n, key.ldc, key.stride_c);
    cublasLtMatmulPreference_t pref;
    MTL_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws_bytes = 0;
    lt_workspace(ctx, &ws_bytes);
    MTL_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                          &ws_bytes, sizeof ws_bytes));
    const uint32_t al_a = static_cast<uint32_t>(key.align_a), al_b = static_cast<uint32_t>(key.align_b),
                   al_c = static_cast<uint32_t>(key.align_c);
    MTL_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                          &al_a, sizeof al_a));
    MTL_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                          &al_b, sizeof al_b));
    MTL_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                          &al_c, sizeof al_c));
    MTL_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                          &al_c, sizeof al_c));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(ctx.native().blas_lt), plan->desc,
                                       plan->a, plan->b, plan->c, plan->c, pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    MTL_CUBLAS_CHECK(st);
    check(found > 0, ErrorCode::NotSupported, "matmul: cuBLASLt has no algorithm for m=", key.m, " n=", key.n,
          " k=", key.k, " batch=", key.batch);
    plan->algo = result.algo;
    return plan;
  });
}

void lt_run(const Context& ctx, const LtPlan& plan, const void* a, const void* b, void* c, float alpha,
            float beta, cudaStream_t stream) {
  size_t ws_bytes = 0;
  void* ws = lt_workspace(ctx, &ws_bytes);
  MTL_CUBLAS_CHECK(cublasLtMatmul(static_cast<cublasLtHandle_t>(ctx.native().blas_lt), plan.desc, &alpha, a,
                                  plan.a, b, plan.b, &beta, c, plan.c, c, plan.c, &plan.algo, ws, ws_bytes,
                                  stream));
}

void matmul(const Tensor& a_in, const Tensor& b_in, const Tensor& out, float alpha, float beta) {
  cudaStream_t stream = stream_of(out);
  const Context& ctx = *out.context();
  const int r = out.rank();
  const int64_t m = out.dim(-2), n = out.dim(-1), k = a_in.dim(-1);
  // Inputs and output may differ in element size (f16 or bf16 products into f32).
  const int64_t es = element_size(a_in.dtype()), es_out = element_size(out.dtype());
  // cuBLASLt needs one unit stride per matrix; a view unit-strided in neither inner dimension (a slice
  // with a step, a broadcast row) is first made contiguous. The same for an output that is neither
  // row- nor column-major: it is computed into dense scratch and copied back.
  Tensor a = a_in, b = b_in;
  LtOperand tmp;
  if (!lt_operand(m, k, a.stride(-2), a.stride(-1), tmp)) a = a.contiguous();
  if (!lt_operand(k, n, b.stride(-2), b.stride(-1), tmp)) b = b.contiguous();
  Tensor o = out;
  const bool out_row =
      (out.stride(-1) == 1 || n == 1) && (m == 1 || out.stride(-2) >= n) && (m == 1 || out.stride(-2) > 0);
  const bool out_col =
      (out.stride(-2) == 1 || m == 1) && (n == 1 || out.stride(-1) >= m) && (n == 1 || out.stride(-1) > 0);
  if (!out_row && !out_col) {
    o = Tensor::empty(out.context(), out.shape(), out.dtype(), Storage::Pool);
    if (beta != 0.f) metallic::copy(out, o);
  }
  // Pose the column-major problem D (P x Q, unit row stride) = X (P x R) Y (R x Q).
  int64_t P, Q, R = k, xs_r, xs_c, ys_r, ys_c, ld_d;
  const Tensor *X, *Y;
  const bool row_form = out_row || !out_col;  // dense scratch is row-major too
  if (row_form) {
    // D = out^T (N x M): X = B^T (N x K), Y = A^T (K x M).
    P = n, Q = m, X = &b, Y = &a;
    xs_r = b.stride(-1), xs_c = b.stride(-2), ys_r = a.stride(-1), ys_c = a.stride(-2);
    ld_d = m == 1 ? n : o.stride(-2);
  } else {
    // D = out (M x N) column-major: X = A, Y = B.
    P = m, Q = n, X = &a, Y = &b;
    xs_r = a.stride(-2), xs_c = a.stride(-1), ys_r = b.stride(-2), ys_c = b.stride(-1);
    ld_d = n == 1 ? m : o.stride(-1);
  }
  LtOperand ox, oy;
  check(lt_operand(P, R, xs_r, xs_c, ox) && lt_operand(R, Q, ys_r, ys_c, oy), ErrorCode::Internal,
        "matmul: operand layout");
  // Batch: collapse trailing batch dims with one uniform stride per operand; loop over the rest.
  const int nb = r - 2;
  const Tensor* ops3[3] = {X, Y, &o};
  int split = nb;  // dims [split, nb) form the strided batch
  int64_t count = 1, stride[3] = {0, 0, 0};
  while (split > 0) {
    const int d = split - 1;
    const int64_t ext = o.dim(d);
    if (ext == 1) {
      --split;
      continue;
    }
    bool ok = true;
    int64_t s[3];
    for (int i = 0; i < 3; ++i) {
      s[i] = ops3[i]->stride(d);
      if (count > 1 && s[i] != stride[i] * count) ok = false;
    }
    if (!ok) break;
    if (count == 1)
      for (int i = 0; i < 3; ++i) stride[i] = s[i];
    count *= ext;
    --split;
  }
  Shape loop;
  std::array<Strides, 3> lstr;
  for (int d = 0; d < split; ++d) {
    loop.push_back(o.dim(d));
    for (int i = 0; i < 3; ++i) lstr[static_cast<size_t>(i)].push_back(ops3[i]->stride(d));
  }
  const auto base_x = reinterpret_cast<intptr_t>(X->data()), base_y = reinterpret_cast<intptr_t>(Y->data()),
             base_o = reinterpret_cast<intptr_t>(o.data());
  // Alignment: of the base pointers, batch strides and every looped offset (in bytes).
  int64_t al[3] = {alignment_of({base_x, stride[0] * es}), alignment_of({base_y, stride[1] * es}),
                   alignment_of({base_o, stride[2] * es_out})};
  for (int d = 0; d < loop.rank(); ++d)
    for (int i = 0; i < 3; ++i)
      al[i] = std::min(al[i], alignment_of({lstr[static_cast<size_t>(i)][d] * (i == 2 ? es_out : es)}));
  LtKey key{};
  key.m = P, key.n = Q, key.k = R, key.batch = count;
  key.dtype = static_cast<int64_t>(cuda_type(a.dtype()));
  key.out_dtype = static_cast<int64_t>(cuda_type(o.dtype()));
  key.op_a = ox.op, key.op_b = oy.op;
  key.a_rows = ox.rows, key.a_cols = ox.cols, key.lda = ox.ld;
  key.b_rows = oy.rows, key.b_cols = oy.cols, key.ldb = oy.ld;
  key.ldc = ld_d;
  key.stride_a = stride[0], key.stride_b = stride[1], key.stride_c = stride[2];
  key.beta_zero = beta == 0.f, key.align_a = al[0], key.align_b = al[1], key.align_c = al[2];
  std::shared_ptr<LtPlan> plan = lt_plan(ctx, key);
  auto* px = static_cast<const char*>(X->data());
  auto* py = static_cast<const char*>(Y->data());
  auto* po = static_cast<char*>(o.data());
  const int64_t total = loop.numel();
  std::vector<int64_t> idx(static_cast<size_t>(loop.rank()), 0);
  for (int64_t it = 0; it < total; ++it) {
    int64_t off[3] = {0, 0, 0};
    for (int d = 0; d < loop.rank(); ++d)
      for (int i = 0; i < 3; ++i) off[i] += idx[static_cast<size_t>(d)] * lstr[static_cast<size_t>(i)][d];
    lt_run(ctx, *plan, px + off[0] * es, py + off[1] * es, po + off[2] * es_out, alpha, beta, stream);
    for (int d = loop.rank() - 1; d >= 0; --d) {
      if (++idx[static_cast<size_t>(d)] < loop[d]) break;
      idx[static_cast<size_t>(d)] = 0;
    }
  }
  if (o.data() != out.data()) metallic::copy(o, out);
}

}  // namespace metallic::cuda
