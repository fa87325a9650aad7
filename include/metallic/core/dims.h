// Small fixed-capacity lists of dimensions: tensor shapes and element strides.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

namespace metallic {

/// Most dimensions a tensor may have.
inline constexpr int kMaxDims = 8;

/// An ordered list of up to kMaxDims signed 64-bit extents; used for shapes and for strides.
class Dims {
 public:
  Dims() = default;
  Dims(std::initializer_list<int64_t> values);
  explicit Dims(std::span<const int64_t> values);
  /// `rank` copies of `value`.
  static Dims filled(int rank, int64_t value);

  int rank() const { return rank_; }
  bool empty() const { return rank_ == 0; }
  int64_t operator[](int i) const { return values_[static_cast<size_t>(i)]; }
  int64_t& operator[](int i) { return values_[static_cast<size_t>(i)]; }
  /// Extent `i`, where negative `i` counts from the back; out of range raises InvalidArgument.
  int64_t at(int i) const;
  /// Product of all extents (1 for rank 0).
  int64_t numel() const;
  const int64_t* begin() const { return values_.data(); }
  const int64_t* end() const { return values_.data() + rank_; }
  /// Appends an extent; a full list raises InvalidArgument.
  void push_back(int64_t value);
  /// Inserts `value` before position `index`.
  void insert(int index, int64_t value);
  /// Removes position `index`.
  void erase(int index);
  bool operator==(const Dims& other) const;
  /// Text such as "[2, 3, 4]".
  std::string to_string() const;

 private:
  std::array<int64_t, kMaxDims> values_{};
  int rank_ = 0;
};

/// Extents of a tensor.
using Shape = Dims;
/// Steps in elements between neighbours along each dimension of a tensor.
using Strides = Dims;

/// Row-major strides of a dense tensor of `shape`.
Strides contiguous_strides(const Shape& shape);
/// Shape two operands broadcast to (NumPy rules); ShapeMismatch naming `op` when they cannot.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
/// Maps a possibly negative dimension index into [0, rank); InvalidArgument naming `op` otherwise.
int normalize_dim(int dim, int rank, const char* op);

}  // namespace metallic
