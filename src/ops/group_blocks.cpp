#include "metallic/ops/group_blocks.h"

#include "backend/matmul.h"
#include "metallic/model/quant.h"
#include "metallic/model/quant_blocks.h"
#include "ops/dispatch.h"
#include "ops/validate.h"

namespace metallic {

bool can_group_blocks(const Tensor& w) {
  return w.defined() && quant::grouped_dtype(w.dtype()).has_value() && w.rank() == 2 &&
         w.dim(1) % quant::kQK == 0 && w.stride(1) == 1 && (w.dim(0) <= 1 || w.stride(0) == w.dim(1));
}

Tensor group_blocks(const Tensor& w) {
  ops::require_defined(w, "group_blocks", "w");
  const std::optional<DType> grouped = quant::grouped_dtype(w.dtype());
  check(grouped.has_value(), ErrorCode::NotSupported, "group_blocks: ", name(w.dtype()),
        " has no grouped form (q4_0, q8_0)");
  check(can_group_blocks(w), ErrorCode::InvalidArgument,
        "group_blocks: w must be [N, K] with dense rows and K a ", "multiple of ", quant::kQK, ", got shape ",
        w.shape().to_string(), " strides ", w.strides().to_string());
  Tensor out = Tensor::empty(w.context(), w.shape(), *grouped);
  if (w.numel() > 0) MTL_DISPATCH(w.device(), group_blocks, w, out);
  return out;
}

}  // namespace metallic
