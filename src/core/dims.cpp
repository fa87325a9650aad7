#include "metallic/core/dims.h"

#include <algorithm>

#include "metallic/core/error.h"

namespace metallic {

Dims::Dims(std::initializer_list<int64_t> values)
    : Dims(std::span<const int64_t>(values.begin(), values.size())) {}

Dims::Dims(std::span<const int64_t> values) {
  check(values.size() <= kMaxDims, ErrorCode::InvalidArgument, "a tensor has at most ", kMaxDims,
        " dimensions, got ", values.size());
  std::copy(values.begin(), values.end(), values_.begin());
  rank_ = static_cast<int>(values.size());
}

Dims Dims::filled(int rank, int64_t value) {
  check(rank >= 0 && rank <= kMaxDims, ErrorCode::InvalidArgument, "rank ", rank, " out of range");
  Dims d;
  d.rank_ = rank;
  std::fill_n(d.values_.begin(), rank, value);
  return d;
}

int64_t Dims::at(int i) const { return values_[static_cast<size_t>(normalize_dim(i, rank_, "Dims::at"))]; }

int64_t Dims::numel() const {
  int64_t n = 1;
  for (int64_t v : *this) n *= v;
  return n;
}

void Dims::push_back(int64_t value) { insert(rank_, value); }

void Dims::insert(int index, int64_t value) {
  check(rank_ < kMaxDims, ErrorCode::InvalidArgument, "a tensor has at most ", kMaxDims, " dimensions");
  check(index >= 0 && index <= rank_, ErrorCode::InvalidArgument, "insert position ", index,
        " out of range for rank ", rank_);
  std::copy_backward(values_.begin() + index, values_.begin() + rank_, values_.begin() + rank_ + 1);
  values_[static_cast<size_t>(index)] = value;
  ++rank_;
}

void Dims::erase(int index) {
  check(index >= 0 && index < rank_, ErrorCode::InvalidArgument, "erase position ", index,
        " out of range for rank ", rank_);
  std::copy(values_.begin() + index + 1, values_.begin() + rank_, values_.begin() + index);
  --rank_;
}

bool Dims::operator==(const Dims& other) const {
  return rank_ == other.rank_ && std::equal(begin(), end(), other.begin());
}

std::string Dims::to_string() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ", ";
    s += std::to_string(values_[static_cast<size_t>(i)]);
  }
  return s + "]";
}

Strides contiguous_strides(const Shape& shape) {
  Strides strides = Dims::filled(shape.rank(), 1);
  for (int i = shape.rank() - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * std::max<int64_t>(shape[i + 1], 1);
  return strides;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const int rank = std::max(a.rank(), b.rank());
  Shape out = Dims::filled(rank, 1);
  for (int i = 0; i < rank; ++i) {
    const int ia = a.rank() - rank + i, ib = b.rank() - rank + i;
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    check(da == db || da == 1 || db == 1, ErrorCode::ShapeMismatch, op, ": shapes ", a.to_string(), " and ",
          b.to_string(), " do not broadcast (dimension ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int normalize_dim(int dim, int rank, const char* op) {
  const int d = dim < 0 ? dim + rank : dim;
  check(d >= 0 && d < rank, ErrorCode::InvalidArgument, op, ": dimension ", dim, " out of range for rank ",
        rank);
  return d;
}

}  // namespace metallic
