#include "metallic/ops/embedding.h"

#include "backend/matmul.h"
#include "metallic/ops/copy.h"
#include "ops/dispatch.h"
#include "ops/validate.h"

namespace metallic {

bool embedding_table_supported(DType dtype) {
  return is_compute_float(dtype) || (dtype >= DType::Q4_0 && dtype <= DType::Q8_K) ||  // the classic blocks
         dtype == DType::Q4_0X8 || dtype == DType::Q8_0X8;
}

namespace {

Shape embedding_shape(const Tensor& table, const Tensor& ids) {
  ops::require_defined(table, "embedding", "table");
  ops::require_defined(ids, "embedding", "ids");
  ops::require_same_device(table, ids, "embedding");
  check(embedding_table_supported(table.dtype()), ErrorCode::NotSupported, "embedding: table dtype ",
        name(table.dtype()), " is not supported (f32, f16, bf16, q4_0 ... q8_k, q4_0x8, q8_0x8)");
  check(ids.dtype() == DType::I32, ErrorCode::DTypeMismatch, "embedding: ids must be i32, got ",
        name(ids.dtype()));
  check(table.rank() == 2, ErrorCode::ShapeMismatch, "embedding: table must be [V, D], got ",
        table.shape().to_string());
  if (is_quantized(table.dtype())) {
    const int64_t d = table.dim(1), block = info(table.dtype()).block_size;
    check(d % block == 0, ErrorCode::InvalidArgument, "embedding: D=", d,
          " is not a multiple of the block size ", block);
    check(table.stride(1) == 1, ErrorCode::InvalidArgument, "embedding: a ", name(table.dtype()),
          " table must have dense rows");
  }
  Shape out = ids.shape();
  out.push_back(table.dim(1));
  return out;
}

}  // namespace

void embedding(const Tensor& table, const Tensor& ids, const Tensor& out) {
  const Shape shape = embedding_shape(table, ids);
  ops::require_defined(out, "embedding", "out");
  ops::require_same_device(table, out, "embedding");
  ops::require_compute_float(out, "embedding", "out");
  ops::require_shape(out, shape, "embedding", "out");
  if (out.numel() == 0) return;
  const int64_t t = ids.numel(), d = table.dim(1);
  const Tensor ids1 = ids.contiguous().reshape({t});
  const bool direct = out.is_contiguous();
  const Tensor y =
      direct ? out.reshape({t, d}) : Tensor::empty(out.context(), {t, d}, out.dtype(), Storage::Pool);
  MTL_DISPATCH(out.device(), embedding, table, ids1, y);
  if (!direct) copy(y.reshape(shape), out);
}

Tensor embedding(const Tensor& table, const Tensor& ids, DType dtype) {
  const Shape shape = embedding_shape(table, ids);
  Tensor out = Tensor::empty(table.context(), shape, dtype);
  embedding(table, ids, out);
  return out;
}

}  // namespace metallic
