// Conversions between element types and the dtype -> C++ type switch, shared by CPU and CUDA kernels.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "metallic/core/dtype.h"
#include "metallic/core/error.h"
#include "metallic/core/half.h"
#include "metallic/core/host_device.h"
#include "metallic/ops/elementwise.h"

namespace metallic::backend {

/// Type arithmetic on T happens in: float for f16/bf16/f32, double for f64, int64 for integers.
template <class T>
using compute_t = std::conditional_t<std::is_same_v<T, double>, double,
                                     std::conditional_t<std::is_integral_v<T>, int64_t, float>>;

/// Widens a stored value to its compute type.
template <class T>
MTL_HOST_DEVICE inline compute_t<T> load(T v) {
  if constexpr (std::is_same_v<T, f16> || std::is_same_v<T, bf16>)
    return static_cast<float>(v);
  else
    return static_cast<compute_t<T>>(v);
}

/// Narrows a value of any arithmetic type to T. Floats going to integers truncate toward zero and
/// saturate; NaN becomes 0 (C++ leaves both undefined, and the backends must agree).
template <class T, class From>
MTL_HOST_DEVICE T store(From v) {
  if constexpr (std::is_same_v<T, f16> || std::is_same_v<T, bf16>) {
    return T(static_cast<float>(v));
  } else if constexpr (std::is_integral_v<T> && std::is_floating_point_v<From>) {
    if (!(v == v)) return T(0);
    const double d = static_cast<double>(v);
    if (d <= static_cast<double>(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
    if (d >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(d);
  } else if constexpr (std::is_integral_v<T> && std::is_integral_v<From>) {
    return static_cast<T>(static_cast<std::make_unsigned_t<From>>(v));  // wraps modulo 2^bits
  } else {
    return static_cast<T>(v);
  }
}

/// Converts between any two element types (through the source's compute type).
template <class To, class From>
MTL_HOST_DEVICE To convert(From v) {
  return store<To>(load(v));
}

/// Calls `f(T{})` with the C++ type of the dense dtype `dtype`; NotSupported naming `op` for block types.
template <class F>
decltype(auto) visit_dense(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::F32: return f(float{});
    case DType::F16: return f(f16{});
    case DType::BF16: return f(bf16{});
    case DType::F64: return f(double{});
    case DType::I8: return f(int8_t{});
    case DType::I16: return f(int16_t{});
    case DType::I32: return f(int32_t{});
    case DType::I64: return f(int64_t{});
    case DType::U8: return f(uint8_t{});
    default: fail(ErrorCode::NotSupported, op, ": dtype ", name(dtype), " is not supported");
  }
}

}  // namespace metallic::backend

namespace metallic::backend {

/// `x op y` in compute type C; integers wrap modulo 2^64 (then modulo the stored width).
template <class C>
MTL_HOST_DEVICE C apply_binary(BinaryOp op, C x, C y) {
  if constexpr (std::is_integral_v<C>) {
    const auto ux = static_cast<uint64_t>(x), uy = static_cast<uint64_t>(y);
    switch (op) {
      case BinaryOp::Add: return static_cast<C>(ux + uy);
      case BinaryOp::Sub: return static_cast<C>(ux - uy);
      case BinaryOp::Mul: return static_cast<C>(ux * uy);
      default: return C(0);  // integer division is refused before any kernel runs
    }
  } else {
    switch (op) {
      case BinaryOp::Add: return x + y;
      case BinaryOp::Sub: return x - y;
      case BinaryOp::Mul: return x * y;
      default: return x / y;
    }
  }
}

}  // namespace metallic::backend
