// IEEE binary16 and bfloat16 storage types with exact conversions written in integer arithmetic,
// so the CPU and CUDA backends round identically (round to nearest even, NaN and Inf kept).
#pragma once

#include <cstdint>
#include <cstring>

#include "metallic/core/host_device.h"

namespace metallic {

/// Bits of a float, without undefined behaviour on host or device.
MTL_HOST_DEVICE inline uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

/// The float with bits `u`.
MTL_HOST_DEVICE inline float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

/// binary16 bits to float (exact).
MTL_HOST_DEVICE inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));  // Inf, NaN (payload kept)
  if (exp != 0) return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return bits_float(sign);
  // Subnormal: value is mant * 2^-24; exact in float.
  const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
  return bits_float(sign | float_bits(v));
}

/// float to binary16 bits, rounding to nearest even; overflow gives Inf, NaN stays NaN.
MTL_HOST_DEVICE inline uint16_t f32_to_f16(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs >= 0x7f800000u) return static_cast<uint16_t>(sign | (abs > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past 65504
  const int32_t exp = static_cast<int32_t>(abs >> 23) - 127;
  if (exp >= -14) {
    // Normal: keep 10 mantissa bits, round the 13 dropped ones to nearest even.
    const uint32_t mant = abs & 0x7fffffu;
    uint32_t h = (static_cast<uint32_t>(exp + 15) << 10) | (mant >> 13);
    const uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is correct
    return static_cast<uint16_t>(sign | h);
  }
  if (exp < -25) return sign;  // below half the smallest subnormal
  // Subnormal: shift the full significand, then round to nearest even.
  const uint32_t sig = (abs & 0x7fffffu) | 0x800000u;
  const int shift = -exp - 1;  // 14..24 bits dropped beyond the 10 kept
  const uint32_t rest = sig & ((1u << shift) - 1u), half = 1u << (shift - 1);
  uint32_t q = sig >> shift;
  if (rest > half || (rest == half && (q & 1u))) ++q;
  return static_cast<uint16_t>(sign | q);
}

/// bfloat16 bits to float (exact).
MTL_HOST_DEVICE inline float bf16_to_f32(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

/// float to bfloat16 bits, rounding to nearest even; NaN stays a quiet NaN.
MTL_HOST_DEVICE inline uint16_t f32_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/// Half-precision storage type; arithmetic happens in float.
struct f16 {
  uint16_t bits;
  f16() = default;
  MTL_HOST_DEVICE explicit f16(float v) : bits(f32_to_f16(v)) {}
  MTL_HOST_DEVICE explicit operator float() const { return f16_to_f32(bits); }
};

/// bfloat16 storage type; arithmetic happens in float.
struct bf16 {
  uint16_t bits;
  bf16() = default;
  MTL_HOST_DEVICE explicit bf16(float v) : bits(f32_to_bf16(v)) {}
  MTL_HOST_DEVICE explicit operator float() const { return bf16_to_f32(bits); }
};

static_assert(sizeof(f16) == 2 && sizeof(bf16) == 2);

}  // namespace metallic
