#include "metallic/ops/sampling.h"

#include <cmath>

#include "backend/sampling.h"
#include "ops/dispatch.h"
#include "ops/validate.h"

namespace metallic {

void validate(const SamplingOptions& o) {
  check(std::isfinite(o.temperature) && o.top_p > 0 && o.min_p < 1 && o.repeat_penalty > 0 &&
            o.penalty_window >= 0,
        ErrorCode::InvalidArgument, "sampler: invalid settings (temperature ", o.temperature, ", top_p ",
        o.top_p, ", min_p ", o.min_p, ", repeat_penalty ", o.repeat_penalty, ", window ", o.penalty_window,
        ")");
}

void sample_token(const Tensor& logits, const Tensor& recent, const Tensor& draw,
                  const SamplingOptions& options, const Tensor& out) {
  validate(options);
  ops::require_defined(logits, "sample_token", "logits");
  ops::require_defined(draw, "sample_token", "draw");
  ops::require_defined(out, "sample_token", "out");
  check(logits.dtype() == DType::F32, ErrorCode::DTypeMismatch, "sample_token: logits must be f32, got ",
        name(logits.dtype()));
  check((logits.rank() == 1 || (logits.rank() == 2 && logits.dim(0) == 1)) && logits.is_contiguous() &&
            logits.numel() > 0 && logits.numel() < (int64_t{1} << 31),
        ErrorCode::ShapeMismatch, "sample_token: logits must be one dense row [V] or [1, V], got ",
        logits.shape().to_string());
  check(draw.dtype() == DType::I64 && draw.numel() == 1, ErrorCode::InvalidArgument,
        "sample_token: draw must be one i64");
  check(out.dtype() == DType::I32 && out.numel() == 1, ErrorCode::InvalidArgument,
        "sample_token: out must be one i32");
  ops::require_same_device(logits, draw, "sample_token");
  ops::require_same_device(logits, out, "sample_token");
  Tensor window;
  if (recent.defined() && recent.numel() > 0) {
    ops::require_same_device(logits, recent, "sample_token");
    check(recent.dtype() == DType::I32 && recent.rank() == 1 && recent.is_contiguous(),
          ErrorCode::InvalidArgument, "sample_token: recent must be a dense i32 [W], got ",
          name(recent.dtype()), " ", recent.shape().to_string());
    window = recent;
  }
  MTL_DISPATCH(logits.device(), sample_token, logits.reshape({logits.numel()}), window, draw, options, out);
}

}  // namespace metallic
