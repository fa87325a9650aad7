// Tensor members that need kernels (copies, transfers). They are declared with Tensor in core/ but
// defined here so that core/ itself never calls down into a backend's kernels.
#include <type_traits>

#include "backend/runtime.h"
#include "metallic/core/context.h"
#include "metallic/core/error.h"
#include "metallic/core/tensor.h"
#include "metallic/ops/copy.h"

namespace metallic {

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const { return to(context()); }

Tensor Tensor::to(const std::shared_ptr<Context>& target) const {
  check(target != nullptr, ErrorCode::InvalidArgument, "Tensor::to: null context");
  if (target->device() == device() && !is_quantized(dtype_)) {
    Tensor out = empty(target, shape_, dtype_);
    copy(*this, out);
    return out;
  }
  check(is_contiguous() || !is_quantized(dtype_), ErrorCode::NotSupported, "Tensor::to: non-contiguous ",
        name(dtype_), " view");
  const Tensor src = contiguous();
  Tensor out = empty(target, shape_, dtype_);
  // The stream that is ordered after the source's producers does the copy.
  const Context& ordering = device().is_cuda() ? *context() : *target;
  backend::copy_runtime(target->device(), device())
      .copy(out.data(), src.data(), static_cast<size_t>(nbytes()), ordering.native().stream);
  return out;
}

template <class T>
Tensor Tensor::from_vector(const std::shared_ptr<Context>& context, std::span<const T> values,
                           const Shape& shape) {
  check(static_cast<int64_t>(values.size()) == shape.numel(), ErrorCode::ShapeMismatch,
        "from_vector: ", values.size(), " values for shape ", shape.to_string());
  Tensor out = empty(context, shape, dtype_of<T>());
  out.assign(values);
  return out;
}

template <class T>
void Tensor::assign(std::span<const T> values) const {
  check(defined() && is_contiguous(), ErrorCode::InvalidArgument, "assign: the tensor must be contiguous");
  check(dtype_ == dtype_of<T>(), ErrorCode::DTypeMismatch, "assign: tensor holds ", name(dtype_), ", not ",
        name(dtype_of<T>()));
  check(static_cast<int64_t>(values.size()) == numel(), ErrorCode::ShapeMismatch, "assign: ", values.size(),
        " values for shape ", shape_.to_string());
  backend::copy_runtime(device(), Device::cpu())
      .copy(data(), values.data(), values.size_bytes(), context()->native().stream);
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  check(defined(), ErrorCode::InvalidArgument, "to_vector: undefined tensor");
  Tensor src = *this;
  if (std::is_same_v<T, float> && info(dtype_).is_float && dtype_ != DType::F32)
    src = cast(*this, DType::F32);
  check(src.dtype() == dtype_of<T>(), ErrorCode::DTypeMismatch, "to_vector: tensor holds ", name(dtype_),
        ", not ", name(dtype_of<T>()));
  src = src.contiguous();
  std::vector<T> out(static_cast<size_t>(numel()));
  const Context& ctx = *src.context();
  if (device().is_cuda()) ctx.synchronize();
  backend::copy_runtime(Device::cpu(), device())
      .copy(out.data(), src.data(), out.size() * sizeof(T), ctx.native().stream);
  return out;
}

#define MTL_INSTANTIATE(T)                                                                                   \
  template Tensor Tensor::from_vector<T>(const std::shared_ptr<Context>&, std::span<const T>, const Shape&); \
  template std::vector<T> Tensor::to_vector<T>() const;                                                      \
  template void Tensor::assign<T>(std::span<const T>) const;
MTL_INSTANTIATE(float)
MTL_INSTANTIATE(double)
MTL_INSTANTIATE(f16)
MTL_INSTANTIATE(bf16)
MTL_INSTANTIATE(int8_t)
MTL_INSTANTIATE(int16_t)
MTL_INSTANTIATE(int32_t)
MTL_INSTANTIATE(int64_t)
MTL_INSTANTIATE(uint8_t)
#undef MTL_INSTANTIATE

}  // namespace metallic
