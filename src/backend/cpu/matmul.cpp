// CPU matrix products through OpenBLAS. Half types are converted to f32 scratch (exact) and back; f32
// operands are passed in place whenever one of their inner strides is 1, otherwise packed.
#include "backend/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/strided.h"
#include "backend/scalar.h"
#include "metallic/model/quant.h"

namespace metallic::cpu {
namespace {

/// A row-major-addressed matrix: element (i, j) at p[i * rs + j * cs].
template <class T>
struct Mat {
  const T* p;
  int64_t rows, cols, rs, cs;
};

/// How BLAS can read a matrix in place: row-major, either as stored (NoTrans) or transposed.
struct BlasView {
  bool ok = false;
  CBLAS_TRANSPOSE trans = CblasNoTrans;
  int64_t ld = 0;
};

BlasView blas_view(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  // Stored row-major: unit column stride and rows far enough apart (a single row needs no row stride).
  if ((cs == 1 || cols == 1) && (rows == 1 || rs >= cols)) return {true, CblasNoTrans, rows == 1 ? cols : rs};
  // Stored column-major: a row-major view of the transpose.
  if ((rs == 1 || rows == 1) && (cols == 1 || cs >= rows)) return {true, CblasTrans, cols == 1 ? rows : cs};
  return {};
}

/// Packs any strided matrix of T into dense row-major f32.
template <class T>
void pack(const T* p, int64_t rows, int64_t cols, int64_t rs, int64_t cs, float* dst) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[i * cols + j] = static_cast<float>(p[i * rs + j * cs]);
}

template <class T>
void matmul_typed(const Tensor& a, const Tensor& b, const Tensor& out, float alpha, float beta) {
  const int r = out.rank();
  const int64_t m = out.dim(-2), n = out.dim(-1), k = a.dim(-1);
  Shape batch;
  std::array<Strides, 3> bstrides;
  for (int d = 0; d < r - 2; ++d) {
    batch.push_back(out.dim(d));
    bstrides[0].push_back(a.stride(d));
    bstrides[1].push_back(b.stride(d));
    bstrides[2].push_back(out.stride(d));
  }
  const T* pa = a.data_as<T>();
  const T* pb = b.data_as<T>();
  T* po = out.data_as<T>();
  const int64_t ars = a.stride(-2), acs = a.stride(-1), brs = b.stride(-2), bcs = b.stride(-1);
  const int64_t ors = out.stride(-2), ocs = out.stride(-1);
  constexpr bool is_f32 = std::is_same_v<T, float>;
  std::vector<float> sa, sb, so;
  for_each_offset(batch, bstrides, [&](int64_t, const std::array<int64_t, 3>& off) {
    const T* ma = pa + off[0];
    const T* mb = pb + off[1];
    T* mo = po + off[2];
    // Operands: in place when f32 and BLAS-addressable, else packed to dense f32.
    const float* fa;
    const float* fb;
    BlasView va = blas_view(m, k, ars, acs), vb = blas_view(k, n, brs, bcs);
    if (is_f32 && va.ok) {
      fa = reinterpret_cast<const float*>(ma);
    } else {
      sa.resize(static_cast<size_t>(m * k));
      pack(ma, m, k, ars, acs, sa.data());
      fa = sa.data();
      va = {true, CblasNoTrans, k};
    }
    if (is_f32 && vb.ok) {
      fb = reinterpret_cast<const float*>(mb);
    } else {
      sb.resize(static_cast<size_t>(k * n));
      pack(mb, k, n, brs, bcs, sb.data());
      fb = sb.data();
      vb = {true, CblasNoTrans, n};
    }
    // Output: in place when f32 with unit column stride, else through dense f32 scratch.
    const bool out_direct = is_f32 && (ocs == 1 || n == 1) && (m == 1 || ors >= n);
    float* fo;
    int64_t ldo;
    if (out_direct) {
      fo = reinterpret_cast<float*>(mo);
      ldo = m == 1 ? n : ors;
    } else {
      so.assign(static_cast<size_t>(m * n), 0.f);
      if (beta != 0.f) pack(mo, m, n, ors, ocs, so.data());
      fo = so.data();
      ldo = n;
    }
    cblas_sgemm(CblasRowMajor, va.trans, vb.trans, static_cast<blasint>(m), static_cast<blasint>(n),
                static_cast<blasint>(k), alpha, fa, static_cast<blasint>(va.ld), fb,
                static_cast<blasint>(vb.ld), beta, fo, static_cast<blasint>(ldo));
    if (!out_direct)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) mo[i * ors + j * ocs] = backend::store<T>(fo[i * n + j]);
  });
}

/// Rows [row0, row0 + rows) of a weight [N, K] as dense f32 (dequantized for block types).
void weight_rows_f32(const Tensor& w, int64_t row0, int64_t rows, float* dst) {
  const int64_t k = w.dim(1);
  const DType t = w.dtype();
  const auto* base = static_cast<const uint8_t*>(w.data());
  if (is_quantized(t)) {
    const int64_t row_bytes = storage_bytes(t, w.stride(0));  // rows are whole blocks (front end checks)
    for (int64_t r = 0; r < rows; ++r) quant::dequantize(t, base + (row0 + r) * row_bytes, dst + r * k, k);
    return;
  }
  const int64_t rs = w.stride(0), cs = w.stride(1);
  backend::visit_dense(t, "linear", [&](auto tag) {
    using T = decltype(tag);
    const T* p = reinterpret_cast<const T*>(base);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < k; ++j) dst[r * k + j] = static_cast<float>(p[(row0 + r) * rs + j * cs]);
  });
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& out, float alpha, float beta) {
  backend::visit_dense(out.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, f16> || std::is_same_v<T, bf16>)
      matmul_typed<T>(a, b, out, alpha, beta);
    else
      fail(ErrorCode::NotSupported, "matmul: dtype ", name(out.dtype()));
  });
}

void linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out) {
  const int64_t m = x.dim(0), k = x.dim(1), n = weight.dim(0), xs = x.stride(0);
  // x as dense f32 [M, K].
  std::vector<float> xf(static_cast<size_t>(m * k));
  backend::visit_dense(x.dtype(), "linear", [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.data_as<T>();
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < k; ++j) xf[static_cast<size_t>(i * k + j)] = static_cast<float>(p[i * xs + j]);
  });
  std::vector<float> yf(static_cast<size_t>(m * n));
  // f32 rows with unit columns feed the GEMM in place; other types are decoded in chunks of at most ~8 MiB
  // of f32, and the products are exact f32 products of the decoded values.
  const bool in_place = weight.dtype() == DType::F32 && weight.stride(1) == 1;
  const int64_t chunk =
      in_place ? n
               : std::max<int64_t>(1, std::min<int64_t>(n, (int64_t{8} << 20) / 4 / std::max<int64_t>(k, 1)));
  std::vector<float> wf(in_place ? 0 : static_cast<size_t>(chunk * k));
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    const float* w = in_place ? weight.data_as<float>() + r0 * weight.stride(0) : wf.data();
    const int64_t ldw = in_place ? weight.stride(0) : k;
    if (!in_place) weight_rows_f32(weight, r0, rows, wf.data());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m), static_cast<blasint>(rows),
                static_cast<blasint>(k), 1.f, xf.data(), static_cast<blasint>(k), w,
                static_cast<blasint>(ldw), 0.f, yf.data() + r0, static_cast<blasint>(n));
  }
  if (bias.defined()) {
    std::vector<float> bf(static_cast<size_t>(n));
    backend::visit_dense(bias.dtype(), "linear", [&](auto tag) {
      using T = decltype(tag);
      const T* p = bias.data_as<T>();
      const int64_t bs = bias.stride(0);
      for (int64_t j = 0; j < n; ++j) bf[static_cast<size_t>(j)] = static_cast<float>(p[j * bs]);
    });
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) yf[static_cast<size_t>(i * n + j)] += bf[static_cast<size_t>(j)];
  }
  backend::visit_dense(out.dtype(), "linear", [&](auto tag) {
    using T = decltype(tag);
    T* p = out.data_as<T>();
    for (int64_t i = 0; i < m * n; ++i) p[i] = backend::store<T>(yf[static_cast<size_t>(i)]);
  });
}

void embedding(const Tensor& table, const Tensor& ids, const Tensor& out) {
  const int64_t v = table.dim(0), d = table.dim(1), t = ids.numel();
  const int32_t* id = ids.data_as<int32_t>();
  std::vector<float> row(static_cast<size_t>(d));
  for (int64_t i = 0; i < t; ++i) {
    check(id[i] >= 0 && id[i] < v, ErrorCode::InvalidArgument, "embedding: id ", id[i], " at position ", i,
          " is outside [0, ", v, ")");
    weight_rows_f32(table, id[i], 1, row.data());
    backend::visit_dense(out.dtype(), "embedding", [&](auto tag) {
      using T = decltype(tag);
      T* p = out.data_as<T>() + i * d;
      for (int64_t j = 0; j < d; ++j) p[j] = backend::store<T>(row[static_cast<size_t>(j)]);
    });
  }
}

void group_blocks(const Tensor& w, const Tensor& out) {
  quant::group_blocks(w.dtype(), w.data(), out.data(), w.numel());
}

}  // namespace metallic::cpu
