// The GGUF (ggml) quantized block layouts and their per-block dequantization, shared by host and CUDA code so
// the CPU reference and the GPU kernels decode the same bytes with the same arithmetic.
//
// Layouts are bit-exact with ggml: half-precision fields are stored as raw binary16 bits (uint16_t) and every
// struct has 2-byte (4 for q8_K) alignment, so the sizes below equal ggml's block sizes with no padding.
// Products and sums go through mul()/sub()/add() so the device compiler cannot fuse them into FMAs, which
// would round differently from the host.
#pragma once

#include <cstdint>

#include "metallic/core/half.h"

namespace metallic::quant {

/// Elements per super-block of the K-quant types.
inline constexpr int kQK = 256;

/// 32 elements: x = d * (q - 8), q a 4-bit code; element j in the low nibble of qs[j], j + 16 in the high.
struct block_q4_0 {
  static constexpr int kElements = 32;
  uint16_t d;
  uint8_t qs[16];
};
/// 32 elements: x = d * q + m with unsigned 4-bit q.
struct block_q4_1 {
  static constexpr int kElements = 32;
  uint16_t d;
  uint16_t m;
  uint8_t qs[16];
};
/// 32 elements: x = d * (q - 16), q 5 bits: low nibble in qs (as q4_0), fifth bit j in bit j of the
/// little-endian u32 qh.
struct block_q5_0 {
  static constexpr int kElements = 32;
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[16];
};
/// 32 elements: x = d * q + m with unsigned 5-bit q (bits as q5_0).
struct block_q5_1 {
  static constexpr int kElements = 32;
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[16];
};
/// 32 elements: x = d * q, q a signed byte.
struct block_q8_0 {
  static constexpr int kElements = 32;
  uint16_t d;
  int8_t qs[32];
};
/// 32 elements: x = d * q; s = d * sum(q) is kept for dot products with q4_1/q5_1.
struct block_q8_1 {
  static constexpr int kElements = 32;
  uint16_t d;
  uint16_t s;
  int8_t qs[32];
};
/// 256 elements in 16 groups of 16: x = d * (sc & 15) * q - dmin * (sc >> 4), q 2 bits.
struct block_q2_K {
  static constexpr int kElements = kQK;
  uint8_t scales[16];
  uint8_t qs[64];
  uint16_t d;
  uint16_t dmin;
};
/// 256 elements in 16 groups of 16: x = d * (s - 32) * (q - 4), q 3 bits (2 in qs, the third in hmask,
/// stored inverted), s a 6-bit scale packed into 12 bytes.
struct block_q3_K {
  static constexpr int kElements = kQK;
  uint8_t hmask[32];
  uint8_t qs[64];
  uint8_t scales[12];
  uint16_t d;
};
/// 256 elements in 8 groups of 32: x = d * sc * q - dmin * m, q 4 bits, sc/m 6 bits packed into 12 bytes.
struct block_q4_K {
  static constexpr int kElements = kQK;
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};
/// As q4_K with a fifth bit per element in qh.
struct block_q5_K {
  static constexpr int kElements = kQK;
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
/// 256 elements in 16 groups of 16: x = d * scale * (q - 32), q 6 bits (4 in ql, 2 in qh), scale a signed
/// byte.
struct block_q6_K {
  static constexpr int kElements = kQK;
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};
/// 256 elements: x = d * q with a float d; bsums holds the sums of each group of 16 (used by dot products).
struct block_q8_K {
  static constexpr int kElements = kQK;
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};
/// Eight q4_0 blocks (256 elements) with their scales gathered in front: scale b then the 16 quant bytes of
/// block b at 16 + 16 b, so every block's quants are one aligned 16-byte vector when the group is.
struct block_q4_0x8 {
  static constexpr int kElements = 256;
  uint16_t d[8];
  uint8_t qs[8][16];
};
/// Eight q8_0 blocks (256 elements), laid out as block_q4_0x8: the scales, then each block's 32 quants.
struct block_q8_0x8 {
  static constexpr int kElements = 256;
  uint16_t d[8];
  int8_t qs[8][32];
};
/// One binary16 element, so dense half tensors go through the same per-block code as the block types.
struct block_f16 {
  static constexpr int kElements = 1;
  uint16_t bits;
};
/// One bfloat16 element.
struct block_bf16 {
  static constexpr int kElements = 1;
  uint16_t bits;
};
/// One float element.
struct block_f32 {
  static constexpr int kElements = 1;
  float value;
};

static_assert(sizeof(block_q4_0) == 18);
static_assert(sizeof(block_q4_1) == 20);
static_assert(sizeof(block_q5_0) == 22);
static_assert(sizeof(block_q5_1) == 24);
static_assert(sizeof(block_q8_0) == 34);
static_assert(sizeof(block_q8_1) == 36);
static_assert(sizeof(block_q2_K) == 84);
static_assert(sizeof(block_q3_K) == 110);
static_assert(sizeof(block_q4_K) == 144);
static_assert(sizeof(block_q5_K) == 176);
static_assert(sizeof(block_q6_K) == 210);
static_assert(sizeof(block_q8_K) == 292);
static_assert(sizeof(block_q4_0x8) == 144 && sizeof(block_q8_0x8) == 272);
static_assert(sizeof(block_f16) == 2 && sizeof(block_bf16) == 2 && sizeof(block_f32) == 4);

/// Unfused float arithmetic: the device versions carry explicit round-to-nearest so nvcc never contracts them
/// into an FMA (the host build targets no FMA contraction either).
MTL_HOST_DEVICE inline float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
MTL_HOST_DEVICE inline float sub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
MTL_HOST_DEVICE inline float add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

/// The 6-bit scale `sc` and min `m` of group j (0..7) of a q4_K/q5_K block: groups 0-3 sit in the low six
/// bits of bytes j and j + 4; groups 4-7 take their low four bits from byte j + 4 and their top two bits from
/// the spare high bits of bytes j - 4 (scale) and j (min).
MTL_HOST_DEVICE inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

MTL_HOST_DEVICE inline void dequantize_block(const block_f32& b, float* out) { out[0] = b.value; }
MTL_HOST_DEVICE inline void dequantize_block(const block_f16& b, float* out) { out[0] = f16_to_f32(b.bits); }
MTL_HOST_DEVICE inline void dequantize_block(const block_bf16& b, float* out) {
  out[0] = bf16_to_f32(b.bits);
}

MTL_HOST_DEVICE inline void dequantize_block(const block_q8_0& b, float* out) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < 32; ++j) out[j] = mul(static_cast<float>(b.qs[j]), d);
}

MTL_HOST_DEVICE inline void dequantize_block(const block_q4_0& b, float* out) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < 16; ++j) {
    out[j] = mul(static_cast<float>((b.qs[j] & 0xF) - 8), d);
    out[j + 16] = mul(static_cast<float>((b.qs[j] >> 4) - 8), d);
  }
}

MTL_HOST_DEVICE inline void dequantize_block(const block_q4_0x8& b, float* out) {
  for (int k = 0; k < 8; ++k) {
    const float d = f16_to_f32(b.d[k]);
    for (int j = 0; j < 16; ++j) {
      out[32 * k + j] = mul(static_cast<float>((b.qs[k][j] & 0xF) - 8), d);
      out[32 * k + j + 16] = mul(static_cast<float>((b.qs[k][j] >> 4) - 8), d);
    }
  }
}

MTL_HOST_DEVICE inline void dequantize_block(const block_q8_0x8& b, float* out) {
  for (int k = 0; k < 8; ++k) {
    const float d = f16_to_f32(b.d[k]);
    for (int j = 0; j < 32; ++j) out[32 * k + j] = mul(static_cast<float>(b.qs[k][j]), d);
  }
}

MTL_HOST_DEVICE inline void dequantize_block(const block_q4_1& b, float* out) {
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  for (int j = 0; j < 16; ++j) {
    out[j] = add(mul(static_cast<float>(b.qs[j] & 0xF), d), m);
    out[j + 16] = add(mul(static_cast<float>(b.qs[j] >> 4), d), m);
  }
}

/// The 32 high bits of a q5_0/q5_1 block as one little-endian word.
MTL_HOST_DEVICE inline uint32_t q5_high_bits(const uint8_t* qh) {
  return static_cast<uint32_t>(qh[0]) | static_cast<uint32_t>(qh[1]) << 8 |
         static_cast<uint32_t>(qh[2]) << 16 | static_cast<uint32_t>(qh[3]) << 24;
}

MTL_HOST_DEVICE inline void dequantize_block(const block_q5_0& b, float* out) {
  const float d = f16_to_f32(b.d);
  const uint32_t qh = q5_high_bits(b.qh);
  for (int j = 0; j < 16; ++j) {
    const int lo = (b.qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    out[j] = mul(static_cast<float>(lo - 16), d);
    out[j + 16] = mul(static_cast<float>(hi - 16), d);
  }
}

MTL_HOST_DEVICE inline void dequantize_block(const block_q5_1& b, float* out) {
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  const uint32_t qh = q5_high_bits(b.qh);
  for (int j = 0; j < 16; ++j) {
    const int lo = (b.qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    out[j] = add(mul(static_cast<float>(lo), d), m);
    out[j + 16] = add(mul(static_cast<float>(hi), d), m);
  }
}

MTL_HOST_DEVICE inline void dequantize_block(const block_q8_1& b, float* out) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < 32; ++j) out[j] = mul(static_cast<float>(b.qs[j]), d);
}

MTL_HOST_DEVICE inline void dequantize_block(const block_q4_K& b, float* out) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  const uint8_t* q = b.qs;
  // Each 64 elements share 32 bytes: the low nibbles are group 2k, the high nibbles group 2k + 1.
  for (int g = 0; g < 8; g += 2) {
    uint8_t sc, m;
    get_scale_min_k4(g, b.scales, sc, m);
    const float d1 = mul(d, sc), m1 = mul(dmin, m);
    get_scale_min_k4(g + 1, b.scales, sc, m);
    const float d2 = mul(d, sc), m2 = mul(dmin, m);
    for (int l = 0; l < 32; ++l) {
      out[l] = sub(mul(d1, static_cast<float>(q[l] & 0xF)), m1);
      out[l + 32] = sub(mul(d2, static_cast<float>(q[l] >> 4)), m2);
    }
    out += 64;
    q += 32;
  }
}

MTL_HOST_DEVICE inline void dequantize_block(const block_q5_K& b, float* out) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  const uint8_t* ql = b.qs;
  // The fifth bits of groups 2k and 2k + 1 are bits 2k and 2k + 1 of qh[l].
  for (int g = 0; g < 8; g += 2) {
    uint8_t sc, m;
    get_scale_min_k4(g, b.scales, sc, m);
    const float d1 = mul(d, sc), m1 = mul(dmin, m);
    get_scale_min_k4(g + 1, b.scales, sc, m);
    const float d2 = mul(d, sc), m2 = mul(dmin, m);
    const uint8_t bit1 = static_cast<uint8_t>(1u << g), bit2 = static_cast<uint8_t>(2u << g);
    for (int l = 0; l < 32; ++l) {
      const int lo = (ql[l] & 0xF) + ((b.qh[l] & bit1) ? 16 : 0);
      const int hi = (ql[l] >> 4) + ((b.qh[l] & bit2) ? 16 : 0);
      out[l] = sub(mul(d1, static_cast<float>(lo)), m1);
      out[l + 32] = sub(mul(d2, static_cast<float>(hi)), m2);
    }
    out += 64;
    ql += 32;
  }
}

MTL_HOST_DEVICE inline void dequantize_block(const block_q6_K& b, float* out) {
  const float d = f16_to_f32(b.d);
  const uint8_t* ql = b.ql;
  const uint8_t* qh = b.qh;
  const int8_t* sc = b.scales;
  // Each half of 128 elements: 64 ql bytes (two nibbles each) and 32 qh bytes (four 2-bit fields each).
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int g = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      out[l] = mul(mul(d, static_cast<float>(sc[g])), static_cast<float>(q1));
      out[l + 32] = mul(mul(d, static_cast<float>(sc[g + 2])), static_cast<float>(q2));
      out[l + 64] = mul(mul(d, static_cast<float>(sc[g + 4])), static_cast<float>(q3));
      out[l + 96] = mul(mul(d, static_cast<float>(sc[g + 6])), static_cast<float>(q4));
    }
    out += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

MTL_HOST_DEVICE inline void dequantize_block(const block_q2_K& b, float* out) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  const uint8_t* q = b.qs;
  int group = 0;
  // Each half of 128 elements reads 32 qs bytes four times, two bits deeper each pass.
  for (int half = 0; half < 2; ++half) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int part = 0; part < 2; ++part) {
        const uint8_t s = b.scales[group++];
        const float dl = mul(d, static_cast<float>(s & 0xF)), ml = mul(dmin, static_cast<float>(s >> 4));
        for (int l = 0; l < 16; ++l)
          *out++ = sub(mul(dl, static_cast<float>((q[l + 16 * part] >> shift) & 3)), ml);
      }
    }
    q += 32;
  }
}

/// The sixteen signed 6-bit scales of a q3_K block (stored as 4 low bits in bytes 0-7, 2 high bits in 8-11).
MTL_HOST_DEVICE inline int q3_k_scale(const uint8_t* s, int j) {
  const int low = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
  const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}

MTL_HOST_DEVICE inline void dequantize_block(const block_q3_K& b, float* out) {
  const float d = f16_to_f32(b.d);
  const uint8_t* q = b.qs;
  int group = 0;
  uint8_t mask = 1;
  for (int half = 0; half < 2; ++half) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int part = 0; part < 2; ++part) {
        const float dl = mul(d, static_cast<float>(q3_k_scale(b.scales, group++)));
        for (int l = 0; l < 16; ++l) {
          const int i = l + 16 * part;
          const int v = ((q[i] >> shift) & 3) - ((b.hmask[i] & mask) ? 0 : 4);
          *out++ = mul(dl, static_cast<float>(v));
        }
      }
      mask = static_cast<uint8_t>(mask << 1);
    }
    q += 32;
  }
}

MTL_HOST_DEVICE inline void dequantize_block(const block_q8_K& b, float* out) {
  for (int j = 0; j < kQK; ++j) out[j] = mul(b.d, static_cast<float>(b.qs[j]));
}

}  // namespace metallic::quant
