// Elementwise arithmetic with NumPy broadcasting, scalar variants and C++ operators.
#pragma once

#include "metallic/core/tensor.h"

namespace metallic {

/// The binary arithmetic operations.
enum class BinaryOp : uint8_t { Add, Sub, Mul, Div };

/// `a op b` broadcast to a new tensor; both operands need the same dtype (f32, f16, bf16, f64 or an
/// integer type; Div only for floating types) and the same device.
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
/// `a op b` written into `out`, whose shape must be the broadcast shape and whose dtype matches.
void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
/// `a op scalar` (or `scalar op a` when `scalar_first`); the scalar is used in the compute type
/// (float for half types), not rounded to the tensor's dtype first.
Tensor binary(BinaryOp op, const Tensor& a, double scalar, bool scalar_first = false);
/// Scalar variant writing into `out` (same shape and dtype as `a`).
void binary(BinaryOp op, const Tensor& a, double scalar, bool scalar_first, const Tensor& out);

inline Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Add, a, b); }
inline Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Sub, a, b); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }
inline Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Div, a, b); }
inline Tensor add(const Tensor& a, double s) { return binary(BinaryOp::Add, a, s); }
inline Tensor sub(const Tensor& a, double s) { return binary(BinaryOp::Sub, a, s); }
inline Tensor mul(const Tensor& a, double s) { return binary(BinaryOp::Mul, a, s); }
inline Tensor div(const Tensor& a, double s) { return binary(BinaryOp::Div, a, s); }

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return sub(a, s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return div(a, s); }
inline Tensor operator+(double s, const Tensor& a) { return binary(BinaryOp::Add, a, s, true); }
inline Tensor operator-(double s, const Tensor& a) { return binary(BinaryOp::Sub, a, s, true); }
inline Tensor operator*(double s, const Tensor& a) { return binary(BinaryOp::Mul, a, s, true); }
inline Tensor operator/(double s, const Tensor& a) { return binary(BinaryOp::Div, a, s, true); }
inline Tensor operator-(const Tensor& a) { return binary(BinaryOp::Sub, a, 0.0, true); }

}  // namespace metallic
