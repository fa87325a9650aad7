// Row gathers from embedding tables.
#pragma once

#include "metallic/core/tensor.h"

namespace metallic {

/// Whether embedding() gathers from tables of `dtype`.
bool embedding_table_supported(DType dtype);
/// Rows `ids` of `table` ([V, D] in f32, f16, bf16, or a block type Q4_0 ... Q8_K, dequantized on the fly),
/// giving [..., D] in `dtype` (f32, f16 or bf16). ids: i32 of any shape; an id outside [0, V) is an
/// InvalidArgument error on the CPU and yields a zero row on CUDA (checked without a host sync).
Tensor embedding(const Tensor& table, const Tensor& ids, DType dtype = DType::F32);
/// embedding into `out` ([..., D]).
void embedding(const Tensor& table, const Tensor& ids, const Tensor& out);

}  // namespace metallic
