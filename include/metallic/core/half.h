// IEEE binary16 and bfloat16 conversions done with integer bit manipulation only, so host code and CUDA
// device code produce identical bits (no hardware conversion instructions whose NaN or rounding behaviour
// could differ). Narrowing rounds to nearest, ties to even; subnormals, infinities and NaNs are kept.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define MTL_HOST_DEVICE __host__ __device__
#else
#define MTL_HOST_DEVICE
#endif

namespace metallic {

/// The bits of a float.
MTL_HOST_DEVICE inline uint32_t float_bits(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof bits);
  return bits;
}

/// The float with the given bits.
MTL_HOST_DEVICE inline float bits_float(uint32_t bits) {
  float value;
  memcpy(&value, &bits, sizeof value);
  return value;
}

/// Widens binary16 bits to float (exact: every half value is a float value).
MTL_HOST_DEVICE inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return bits_float(sign | 0x7f800000u | (mantissa << 13));  // inf, NaN payload kept
  if (exponent == 0) {
    if (mantissa == 0) return bits_float(sign);
    // Subnormal half: shift the leading one up to the implicit position, lowering the exponent each step.
    int e = 1;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --e;
    }
    return bits_float(sign | (static_cast<uint32_t>(e + 112) << 23) | ((mantissa & 0x3ffu) << 13));
  }
  return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

/// Narrows a float to binary16 bits, rounding to nearest even; overflow gives infinity, NaN stays NaN
/// (quiet).
MTL_HOST_DEVICE inline uint16_t f32_to_f16(float value) {
  const uint32_t x = float_bits(value);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) {  // inf or NaN; a NaN keeps its top payload bits and is made quiet
    return static_cast<uint16_t>(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0u));
  }
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds up to infinity
  if (ax < 0x38800000u) {  // below 2^-14: the result is a half subnormal (or zero)
    const uint32_t exponent = ax >> 23;
    if (exponent < 102) return static_cast<uint16_t>(sign);  // at most 2^-25 (a tie with zero): zero
    const uint32_t mantissa = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exponent;  // value / 2^-24 = mantissa * 2^(exponent - 126)
    uint32_t result = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (result & 1u))) ++result;
    return static_cast<uint16_t>(sign | result);
  }
  uint32_t result = (ax >> 13) - (112u << 10);  // rebias the exponent from 127 to 15
  const uint32_t rest = ax & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (result & 1u))) ++result;  // a carry correctly bumps the exponent
  return static_cast<uint16_t>(sign | result);
}

/// Widens bfloat16 bits to float (exact).
MTL_HOST_DEVICE inline float bf16_to_f32(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

/// Narrows a float to bfloat16 bits, rounding to nearest even; NaN stays NaN (quiet), subnormals are rounded,
/// not flushed.
MTL_HOST_DEVICE inline uint16_t f32_to_bf16(float value) {
  const uint32_t x = float_bits(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace metallic
