#include "metallic/core/tensor.h"

#include <algorithm>
#include <numeric>
#include <optional>

#include "metallic/core/context.h"
#include "metallic/core/error.h"
#include "metallic/core/memory_pool.h"

namespace metallic {
namespace {

// Byte size of `elements` elements; for block types the count must cover whole blocks.
int64_t element_bytes(DType dtype, int64_t elements) { return storage_bytes(dtype, elements); }

// Strides that view the same memory with `shape`, or nullopt when no strides can (the view would need a
// copy).
std::optional<Strides> reshaped_strides(const Shape& old_shape, const Strides& old_strides,
                                        const Shape& shape) {
  if (old_shape.numel() == 0 || old_shape.rank() == 0) return contiguous_strides(shape);
  Strides strides = Dims::filled(shape.rank(), 1);
  int view_d = shape.rank() - 1;
  int64_t chunk_stride = old_strides[old_shape.rank() - 1];
  int64_t tensor_numel = 1, view_numel = 1;
  for (int d = old_shape.rank() - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    // A chunk ends where the next outer dimension is not laid out right after this one.
    const bool chunk_ends =
        d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
      strides[view_d] = view_numel * chunk_stride;
      view_numel *= shape[view_d];
      --view_d;
    }
    if (view_numel != tensor_numel) return std::nullopt;
    if (d > 0) {
      chunk_stride = old_strides[d - 1];
      tensor_numel = view_numel = 1;
    }
  }
  if (view_d != -1) return std::nullopt;
  return strides;
}

}  // namespace

Tensor::Tensor(std::shared_ptr<Buffer> buffer, int64_t offset_bytes, Shape shape, Strides strides,
               DType dtype)
    : buffer_(std::move(buffer)), offset_(offset_bytes), shape_(shape), strides_(strides), dtype_(dtype) {
  check(buffer_ != nullptr, ErrorCode::InvalidArgument, "Tensor: null buffer");
  check(shape_.rank() == strides_.rank(), ErrorCode::InvalidArgument, "Tensor: shape ", shape_.to_string(),
        " and strides ", strides_.to_string(), " differ in rank");
  int64_t last = 0;
  for (int i = 0; i < shape_.rank(); ++i) {
    check(shape_[i] >= 0 && strides_[i] >= 0, ErrorCode::InvalidArgument,
          "Tensor: negative extent or stride in ", shape_.to_string(), " / ", strides_.to_string());
    if (shape_[i] > 0) last += (shape_[i] - 1) * strides_[i];
  }
  if (is_quantized(dtype_) && shape_.rank() > 0) {
    const int64_t block = info(dtype_).block_size;
    check(strides_[shape_.rank() - 1] == 1 && shape_[shape_.rank() - 1] % block == 0,
          ErrorCode::InvalidArgument, "Tensor: rows of ", name(dtype_),
          " must be contiguous whole blocks of ", block, " (shape ", shape_.to_string(), ", strides ",
          strides_.to_string(), ")");
  }
  if (numel() > 0) {
    const int64_t extent =
        is_quantized(dtype_) ? element_bytes(dtype_, last + 1) : (last + 1) * element_size(dtype_);
    check(offset_ >= 0 && offset_ + extent <= static_cast<int64_t>(buffer_->size()),
          ErrorCode::InvalidArgument, "Tensor: view of ", extent, " bytes at offset ", offset_,
          " exceeds its buffer of ", buffer_->size(), " bytes");
  }
}

Tensor Tensor::empty(const std::shared_ptr<Context>& context, const Shape& shape, DType dtype,
                     Storage storage) {
  check(context != nullptr, ErrorCode::InvalidArgument, "Tensor::empty: null context");
  for (int64_t d : shape)
    check(d >= 0, ErrorCode::InvalidArgument, "Tensor::empty: negative extent in ", shape.to_string());
  const auto bytes = static_cast<size_t>(storage_bytes(dtype, shape.numel()));
  auto buffer = storage == Storage::Pool ? context->pool().allocate(bytes) : Buffer::allocate(context, bytes);
  return Tensor(std::move(buffer), 0, shape, contiguous_strides(shape), dtype);
}

const Device& Tensor::device() const {
  check(defined(), ErrorCode::InvalidArgument, "use of an undefined tensor");
  return buffer_->device();
}

const std::shared_ptr<Context>& Tensor::context() const {
  check(defined(), ErrorCode::InvalidArgument, "use of an undefined tensor");
  return buffer_->context();
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int i = rank() - 1; i >= 0; --i) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

void* Tensor::data() const {
  check(defined(), ErrorCode::InvalidArgument, "use of an undefined tensor");
  return static_cast<char*>(buffer_->data()) + offset_;
}

Tensor Tensor::narrow(int dim, int64_t start, int64_t length) const {
  const int d = normalize_dim(dim, rank(), "narrow");
  check(start >= 0 && length >= 0 && start + length <= shape_[d], ErrorCode::InvalidArgument,
        "narrow: range [", start, ", ", start + length, ") outside dimension ", d, " of size ", shape_[d]);
  Shape shape = shape_;
  shape[d] = length;
  return Tensor(buffer_, offset_ + element_bytes(dtype_, start * strides_[d]), shape, strides_, dtype_);
}

Tensor Tensor::slice(int dim, int64_t start, int64_t stop, int64_t step) const {
  const int d = normalize_dim(dim, rank(), "slice");
  check(step > 0, ErrorCode::InvalidArgument, "slice: step must be positive, got ", step);
  const int64_t n = shape_[d];
  auto clamp = [n](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + n : i, 0, n); };
  start = clamp(start);
  stop = std::max(clamp(stop), start);
  Tensor t = narrow(d, start, stop - start);
  t.shape_[d] = (stop - start + step - 1) / step;
  t.strides_[d] *= step;
  return Tensor(t.buffer_, t.offset_, t.shape_, t.strides_, dtype_);
}

Tensor Tensor::select(int dim, int64_t index) const {
  const int d = normalize_dim(dim, rank(), "select");
  const int64_t i = index < 0 ? index + shape_[d] : index;
  check(i >= 0 && i < shape_[d], ErrorCode::InvalidArgument, "select: index ", index,
        " out of range for dimension ", d, " of size ", shape_[d]);
  Tensor t = narrow(d, i, 1);
  return t.squeeze(d);
}

Tensor Tensor::transpose(int dim0, int dim1) const {
  std::vector<int> order(static_cast<size_t>(rank()));
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[static_cast<size_t>(normalize_dim(dim0, rank(), "transpose"))],
            order[static_cast<size_t>(normalize_dim(dim1, rank(), "transpose"))]);
  return permute(order);
}

Tensor Tensor::permute(std::span<const int> order) const {
  check(static_cast<int>(order.size()) == rank(), ErrorCode::InvalidArgument, "permute: ", order.size(),
        " dimensions given for a tensor of rank ", rank());
  Shape shape = shape_;
  Strides strides = strides_;
  std::vector<bool> seen(static_cast<size_t>(rank()), false);
  for (int i = 0; i < rank(); ++i) {
    const int d = normalize_dim(order[static_cast<size_t>(i)], rank(), "permute");
    check(!seen[static_cast<size_t>(d)], ErrorCode::InvalidArgument, "permute: dimension ", d, " repeated");
    seen[static_cast<size_t>(d)] = true;
    shape[i] = shape_[d];
    strides[i] = strides_[d];
  }
  return Tensor(buffer_, offset_, shape, strides, dtype_);
}

Tensor Tensor::reshape(const Shape& requested) const {
  Shape shape = requested;
  int inferred = -1;
  int64_t known = 1;
  for (int i = 0; i < shape.rank(); ++i) {
    if (shape[i] == -1) {
      check(inferred < 0, ErrorCode::InvalidArgument, "reshape: more than one -1 in ", requested.to_string());
      inferred = i;
    } else {
      check(shape[i] >= 0, ErrorCode::InvalidArgument, "reshape: invalid extent in ", requested.to_string());
      known *= shape[i];
    }
  }
  if (inferred >= 0) {
    check(known != 0 && numel() % known == 0, ErrorCode::ShapeMismatch, "reshape: cannot infer -1 in ",
          requested.to_string(), " for ", numel(), " elements");
    shape[inferred] = numel() / known;
  }
  check(shape.numel() == numel(), ErrorCode::ShapeMismatch, "reshape: ", shape_.to_string(), " (", numel(),
        " elements) cannot become ", shape.to_string(), " (", shape.numel(), " elements)");
  std::optional<Strides> strides = reshaped_strides(shape_, strides_, shape);
  if (is_quantized(dtype_) && !is_contiguous()) strides.reset();
  check(strides.has_value(), ErrorCode::InvalidArgument, "reshape: a view of shape ", shape_.to_string(),
        " with strides ", strides_.to_string(), " cannot be viewed as ", shape.to_string(),
        " without a copy; call contiguous() first");
  return Tensor(buffer_, offset_, shape, *strides, dtype_);
}

Tensor Tensor::flatten(int start, int end) const {
  if (rank() == 0) return reshape({1});
  const int s = normalize_dim(start, rank(), "flatten"), e = normalize_dim(end, rank(), "flatten");
  check(s <= e, ErrorCode::InvalidArgument, "flatten: start ", s, " after end ", e);
  Shape shape;
  for (int i = 0; i < s; ++i) shape.push_back(shape_[i]);
  int64_t merged = 1;
  for (int i = s; i <= e; ++i) merged *= shape_[i];
  shape.push_back(merged);
  for (int i = e + 1; i < rank(); ++i) shape.push_back(shape_[i]);
  return reshape(shape);
}

Tensor Tensor::unsqueeze(int dim) const {
  const int d = normalize_dim(dim, rank() + 1, "unsqueeze");
  Shape shape = shape_;
  Strides strides = strides_;
  shape.insert(d, 1);
  strides.insert(d, d < rank() ? shape_[d] * strides_[d] : 1);
  return Tensor(buffer_, offset_, shape, strides, dtype_);
}

Tensor Tensor::squeeze(int dim) const {
  const int d = normalize_dim(dim, rank(), "squeeze");
  check(shape_[d] == 1, ErrorCode::InvalidArgument, "squeeze: dimension ", d, " has size ", shape_[d],
        ", not 1");
  Shape shape = shape_;
  Strides strides = strides_;
  shape.erase(d);
  strides.erase(d);
  return Tensor(buffer_, offset_, shape, strides, dtype_);
}

Tensor Tensor::expand(const Shape& shape) const {
  check(shape.rank() >= rank(), ErrorCode::ShapeMismatch, "expand: cannot expand ", shape_.to_string(),
        " to ", shape.to_string());
  Strides strides = Dims::filled(shape.rank(), 0);
  for (int i = 0; i < shape.rank(); ++i) {
    const int j = i - (shape.rank() - rank());
    if (j < 0) continue;
    check(shape_[j] == shape[i] || shape_[j] == 1, ErrorCode::ShapeMismatch, "expand: cannot expand ",
          shape_.to_string(), " to ", shape.to_string());
    strides[i] = shape_[j] == shape[i] ? strides_[j] : 0;
  }
  return Tensor(buffer_, offset_, shape, strides, dtype_);
}

Tensor Tensor::view_as(DType dtype) const {
  check(!is_quantized(dtype) && !is_quantized(dtype_) && element_size(dtype) == element_size(dtype_),
        ErrorCode::DTypeMismatch, "view_as: cannot view ", name(dtype_), " as ", name(dtype));
  return Tensor(buffer_, offset_, shape_, strides_, dtype);
}

}  // namespace metallic
