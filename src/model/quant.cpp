// CPU dequantization (per block, through the shared host/device block decoders) and the reference quantizers.
//
// The quantizers follow ggml's quantize_row_*_ref step by step, including the order of floating-point
// operations and its rounding helper, because their output is compared byte for byte with files written by
// llama.cpp. Changing an expression's association here changes the bytes.
#include "metallic/model/quant.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "metallic/core/error.h"
#include "metallic/core/half.h"
#include "metallic/model/quant_blocks.h"

namespace metallic::quant {
namespace {

template <class Block>
void decode(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const Block*>(src);
  for (int64_t b = 0; b < n / Block::kElements; ++b) dequantize_block(blocks[b], dst + b * Block::kElements);
}

// Round to nearest, ties to even, the way ggml does it: adding 1.5 * 2^23 pushes the fraction out of the
// mantissa, so the low mantissa bits hold the rounded integer (valid for |v| < 2^22).
int nearest_int(float v) {
  const uint32_t bits = float_bits(v + 12582912.f);
  return static_cast<int>(bits & 0x7fffffu) - 0x400000;
}

// Float-to-int truncation that stays defined for NaN and huge values (which only malformed input produces).
int truncate(float v) {
  if (!(v > -2147483520.f && v < 2147483520.f)) return 0;
  return static_cast<int>(v);
}

void quantize_q8_0(const float* x, block_q8_0* y, int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i, x += 32) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < 32; ++j) y[i].qs[j] = static_cast<int8_t>(truncate(std::round(x[j] * id)));
  }
}

void quantize_q4_0(const float* x, block_q4_0* y, int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i, x += 32) {
    // The scale maps the value of largest magnitude, sign included, to -8 so that code 0 is used.
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) {
      const int lo = static_cast<int8_t>(truncate(x[j] * id + 8.5f));
      const int hi = static_cast<int8_t>(truncate(x[j + 16] * id + 8.5f));
      y[i].qs[j] = static_cast<uint8_t>((lo < 15 ? lo : 15) | ((hi < 15 ? hi : 15) << 4));
    }
  }
}

// ggml's make_qkx2_quants: codes L in [0, nmax] and (scale, -min) for x ~ scale * L + min with min <= 0,
// searching nstep + 1 candidate scales for the least weighted error.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(l < 0 ? 0 : l > nmax ? nmax : l);
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * step + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = l < 0 ? 0 : l > nmax ? nmax : l;
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        error += weights[i] * diff;
      }
      if (error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// ggml's make_qx_quants with rmse_type 1 and no importance weights (weight x^2): signed codes in
// [-nmax, nmax - 1] stored offset by nmax, trying 19 scales around nmax / max|x|.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < 1e-15f) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const auto clamp = [nmax](int l) { return l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l; };
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp(nearest_int(iscale * x[i]));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(nmax + 0.1f * step) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp(nearest_int(iscale * x[i]));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(nmax + clamp(nearest_int(iscale * x[i])));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

void quantize_q4_k(const float* x, block_q4_K* y, int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i, x += kQK) {
    uint8_t L[kQK], Laux[32];
    float weights[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      const float* xs = x + 32 * j;
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
      scales[j] = make_qkx2_quants(32, 15, xs, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20, false);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    std::memset(y[i].scales, 0, sizeof y[i].scales);
    for (int j = 0; j < 8; ++j) {
      uint8_t ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
      uint8_t lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
      ls = ls < 63 ? ls : 63;
      lm = lm < 63 ? lm : 63;
      if (j < 4) {
        y[i].scales[j] = ls;
        y[i].scales[j + 4] = lm;
      } else {
        y[i].scales[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
        y[i].scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
        y[i].scales[j] |= static_cast<uint8_t>((lm >> 4) << 6);
      }
    }
    y[i].d = f32_to_f16(max_scale / 63.f);
    y[i].dmin = f32_to_f16(max_min / 63.f);
    // Re-derive the codes against the rounded 6-bit scales and half-precision super-scales.
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      get_scale_min_k4(j, y[i].scales, sc, m);
      const float d = f16_to_f32(y[i].d) * sc;
      if (d == 0.0f) continue;
      const float dm = f16_to_f32(y[i].dmin) * m;
      for (int l = 0; l < 32; ++l) {
        const int q = nearest_int((x[32 * j + l] + dm) / d);
        L[32 * j + l] = static_cast<uint8_t>(q < 0 ? 0 : q > 15 ? 15 : q);
      }
    }
    uint8_t* q = y[i].qs;
    for (int j = 0; j < kQK; j += 64, q += 32)
      for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
  }
}

void quantize_q6_k(const float* x, block_q6_K* y, int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i, x += kQK) {
    int8_t L[kQK];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int g = 0; g < 16; ++g) {
      scales[g] = make_qx_quants(16, 32, x + 16 * g, L + 16 * g);
      if (std::fabs(scales[g]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[g]);
        max_scale = scales[g];
      }
    }
    if (max_abs_scale < 1e-15f) {
      std::memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[i].d = f32_to_f16(1 / iscale);
    for (int g = 0; g < 16; ++g) {
      const int s = nearest_int(iscale * scales[g]);
      y[i].scales[g] = static_cast<int8_t>(s < 127 ? s : 127);
    }
    for (int g = 0; g < 16; ++g) {
      const float d = f16_to_f32(y[i].d) * y[i].scales[g];
      if (d == 0.0f) continue;
      for (int l = 0; l < 16; ++l) {
        const int q = nearest_int(x[16 * g + l] / d);
        L[16 * g + l] = static_cast<int8_t>((q < -32 ? -32 : q > 31 ? 31 : q) + 32);
      }
    }
    uint8_t* ql = y[i].ql;
    uint8_t* qh = y[i].qh;
    for (int j = 0; j < kQK; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
        ql[l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
    }
  }
}

void check_count(const char* op, DType dtype, int64_t n) {
  const int64_t block = info(dtype).block_size;
  check(n >= 0 && n % block == 0, ErrorCode::InvalidArgument, op, ": ", n, " elements of ", name(dtype),
        " is not a multiple of its block size ", block);
}

}  // namespace

bool can_dequantize(DType dtype) {
  switch (dtype) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
    case DType::Q8_1:
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::Q8_K:
    case DType::Q4_0X8:
    case DType::Q8_0X8: return true;
    default: return false;
  }
}

bool can_quantize(DType dtype) {
  switch (dtype) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q4_0:
    case DType::Q8_0:
    case DType::Q4_K:
    case DType::Q6_K:
    case DType::Q4_0X8:
    case DType::Q8_0X8: return true;
    default: return false;
  }
}

void dequantize(DType dtype, const void* src, float* dst, int64_t n) {
  check(can_dequantize(dtype), ErrorCode::NotSupported, "dequantize: no decoder for ", name(dtype));
  check_count("dequantize", dtype, n);
  switch (dtype) {
    case DType::F32: decode<block_f32>(src, dst, n); break;
    case DType::F16: decode<block_f16>(src, dst, n); break;
    case DType::BF16: decode<block_bf16>(src, dst, n); break;
    case DType::Q4_0: decode<block_q4_0>(src, dst, n); break;
    case DType::Q4_1: decode<block_q4_1>(src, dst, n); break;
    case DType::Q5_0: decode<block_q5_0>(src, dst, n); break;
    case DType::Q5_1: decode<block_q5_1>(src, dst, n); break;
    case DType::Q8_0: decode<block_q8_0>(src, dst, n); break;
    case DType::Q8_1: decode<block_q8_1>(src, dst, n); break;
    case DType::Q2_K: decode<block_q2_K>(src, dst, n); break;
    case DType::Q3_K: decode<block_q3_K>(src, dst, n); break;
    case DType::Q4_K: decode<block_q4_K>(src, dst, n); break;
    case DType::Q5_K: decode<block_q5_K>(src, dst, n); break;
    case DType::Q6_K: decode<block_q6_K>(src, dst, n); break;
    case DType::Q8_K: decode<block_q8_K>(src, dst, n); break;
    case DType::Q4_0X8: decode<block_q4_0x8>(src, dst, n); break;
    case DType::Q8_0X8: decode<block_q8_0x8>(src, dst, n); break;
    default: fail(ErrorCode::Internal, "dequantize: ", name(dtype), " listed but not dispatched");
  }
}

void quantize(DType dtype, const float* src, void* dst, int64_t n) {
  check(can_quantize(dtype), ErrorCode::NotSupported, "quantize: no encoder for ", name(dtype));
  check_count("quantize", dtype, n);
  const int64_t blocks = n / info(dtype).block_size;
  switch (dtype) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); break;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_f16(src[i]);
      break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(src[i]);
      break;
    case DType::Q8_0: quantize_q8_0(src, static_cast<block_q8_0*>(dst), blocks); break;
    case DType::Q4_0: quantize_q4_0(src, static_cast<block_q4_0*>(dst), blocks); break;
    case DType::Q4_K: quantize_q4_k(src, static_cast<block_q4_K*>(dst), blocks); break;
    case DType::Q6_K: quantize_q6_k(src, static_cast<block_q6_K*>(dst), blocks); break;
    case DType::Q4_0X8:
    case DType::Q8_0X8: {
      const DType base = dtype == DType::Q4_0X8 ? DType::Q4_0 : DType::Q8_0;
      std::vector<uint8_t> blocks_of_base(static_cast<size_t>(storage_bytes(base, n)));
      quantize(base, src, blocks_of_base.data(), n);
      group_blocks(base, blocks_of_base.data(), dst, n);
      break;
    }
    default: fail(ErrorCode::Internal, "quantize: ", name(dtype), " listed but not dispatched");
  }
}

std::optional<DType> grouped_dtype(DType dtype) {
  switch (dtype) {
    case DType::Q4_0: return DType::Q4_0X8;
    case DType::Q8_0: return DType::Q8_0X8;
    default: return std::nullopt;
  }
}

namespace {

template <class Block, class Group>
void group(const void* src, void* dst, int64_t groups) {
  const auto* in = static_cast<const Block*>(src);
  auto* out = static_cast<Group*>(dst);
  for (int64_t g = 0; g < groups; ++g)
    for (int k = 0; k < 8; ++k) {
      const Block& b = in[8 * g + k];
      out[g].d[k] = b.d;
      std::memcpy(out[g].qs[k], b.qs, sizeof(b.qs));
    }
}

}  // namespace

void group_blocks(DType dtype, const void* src, void* dst, int64_t n) {
  check(grouped_dtype(dtype).has_value(), ErrorCode::NotSupported, "group_blocks: ", name(dtype),
        " has no grouped form (q4_0, q8_0)");
  check(n >= 0 && n % kQK == 0, ErrorCode::InvalidArgument, "group_blocks: ", n, " elements of ", name(dtype),
        " is not a multiple of ", kQK);
  if (dtype == DType::Q4_0)
    group<block_q4_0, block_q4_0x8>(src, dst, n / kQK);
  else
    group<block_q8_0, block_q8_0x8>(src, dst, n / kQK);
}

}  // namespace metallic::quant
