// Tensor: a view (byte offset, shape, element strides, dtype) into a shared Buffer.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "metallic/core/buffer.h"
#include "metallic/core/dims.h"
#include "metallic/core/dtype.h"
#include "metallic/core/half.h"

namespace metallic {

class Context;

/// The DType stored by C++ type T (float, double, f16, bf16, int8_t, int16_t, int32_t, int64_t, uint8_t).
template <class T>
constexpr DType dtype_of();

/// Where a new tensor's memory comes from.
enum class Storage {
  Persistent,  ///< its own allocation, freed with the last view
  Pool,        ///< the context's MemoryPool: per-step temporaries, invalid after reset()
};

/// A strided view of typed memory on one device. Copying a Tensor copies the view, never the data;
/// all views of one allocation share its Buffer. Kernels address memory as
/// `buffer base + offset + sum(index[i] * strides[i]) * element size`, so views with offsets work everywhere.
/// GGUF block types are storage only: their rows must be contiguous and whole blocks.
class Tensor {
 public:
  /// An undefined tensor (no buffer).
  Tensor() = default;
  /// A view of `buffer`; InvalidArgument if it reaches outside the buffer.
  Tensor(std::shared_ptr<Buffer> buffer, int64_t offset_bytes, Shape shape, Strides strides, DType dtype);

  /// Uninitialised contiguous tensor on the context's device.
  static Tensor empty(const std::shared_ptr<Context>& context, const Shape& shape, DType dtype,
                      Storage storage = Storage::Persistent);
  /// Contiguous tensor holding `values` (row-major); values.size() must equal the shape's element count.
  template <class T>
  static Tensor from_vector(const std::shared_ptr<Context>& context, std::span<const T> values,
                            const Shape& shape);
  template <class T>
  static Tensor from_vector(const std::shared_ptr<Context>& context, const std::vector<T>& values,
                            const Shape& shape) {
    return from_vector<T>(context, std::span<const T>(values), shape);
  }
  /// The elements in row-major order, copied to the host. T must match dtype(), except that
  /// float reads any floating dtype (converted on the device first).
  template <class T>
  std::vector<T> to_vector() const;
  /// Overwrites the elements of this contiguous tensor with `values` from host memory (T must match
  /// dtype()), ordered with the work queued on its stream; `values` may be reused once this returns.
  template <class T>
  void assign(std::span<const T> values) const;

  bool defined() const { return buffer_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Strides& strides() const { return strides_; }
  DType dtype() const { return dtype_; }
  int rank() const { return shape_.rank(); }
  /// Extent of dimension `d` (negative counts from the back).
  int64_t dim(int d) const { return shape_.at(d); }
  int64_t stride(int d) const { return strides_.at(d); }
  int64_t numel() const { return shape_.numel(); }
  /// Bytes the elements occupy when dense.
  int64_t nbytes() const { return storage_bytes(dtype_, numel()); }
  int64_t offset() const { return offset_; }
  const std::shared_ptr<Buffer>& buffer() const { return buffer_; }
  const Device& device() const;
  const std::shared_ptr<Context>& context() const;
  /// Row-major dense (strides equal contiguous_strides(shape)); size-1 dimensions may have any stride.
  bool is_contiguous() const;
  /// Address of element 0 (buffer base + offset); raises if the pool memory behind it was reset.
  void* data() const;
  template <class T>
  T* data_as() const {
    return static_cast<T*>(data());
  }

  /// Elements [start, start + length) of dimension `dim`.
  Tensor narrow(int dim, int64_t start, int64_t length) const;
  /// Python-style slice [start, stop) with a positive `step`; negative bounds count from the end.
  Tensor slice(int dim, int64_t start, int64_t stop, int64_t step = 1) const;
  /// The sub-tensor at `index` of dimension `dim`, which is removed.
  Tensor select(int dim, int64_t index) const;
  /// Swaps two dimensions.
  Tensor transpose(int dim0, int dim1) const;
  /// Reorders dimensions: result dimension i is this tensor's dimension order[i].
  Tensor permute(std::span<const int> order) const;
  Tensor permute(std::initializer_list<int> order) const {
    return permute(std::span<const int>(order.begin(), order.size()));
  }
  /// Same elements with another shape (one extent may be -1); InvalidArgument when the strides
  /// cannot express it without a copy (call contiguous() first).
  Tensor reshape(const Shape& shape) const;
  /// Alias of reshape.
  Tensor view(const Shape& shape) const { return reshape(shape); }
  /// Merges dimensions [start, end] into one.
  Tensor flatten(int start = 0, int end = -1) const;
  /// Inserts a size-1 dimension at `dim`.
  Tensor unsqueeze(int dim) const;
  /// Removes dimension `dim`, which must have size 1.
  Tensor squeeze(int dim) const;
  /// Broadcast view to `shape` (size-1 or missing leading dimensions get stride 0).
  Tensor expand(const Shape& shape) const;
  /// The same view with another dtype of equal element size (e.g. f16 bits as i16).
  Tensor view_as(DType dtype) const;

  /// This tensor if contiguous, else a dense copy.
  Tensor contiguous() const;
  /// A dense copy on `context`'s device (also to the same device).
  Tensor to(const std::shared_ptr<Context>& context) const;
  /// A dense copy on the same device.
  Tensor clone() const;

 private:
  std::shared_ptr<Buffer> buffer_;
  int64_t offset_ = 0;
  Shape shape_;
  Strides strides_;
  DType dtype_ = DType::F32;
};

template <>
constexpr DType dtype_of<float>() {
  return DType::F32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::F64;
}
template <>
constexpr DType dtype_of<f16>() {
  return DType::F16;
}
template <>
constexpr DType dtype_of<bf16>() {
  return DType::BF16;
}
template <>
constexpr DType dtype_of<int8_t>() {
  return DType::I8;
}
template <>
constexpr DType dtype_of<int16_t>() {
  return DType::I16;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::I32;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::I64;
}
template <>
constexpr DType dtype_of<uint8_t>() {
  return DType::U8;
}

}  // namespace metallic
