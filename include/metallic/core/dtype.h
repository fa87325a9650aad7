// Element and storage types. Dense types hold one value per element; GGUF block types hold
// `block_size` elements in `block_bytes` bytes and are storage-only (kernels dequantize them).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace metallic {

/// Every type a tensor can store: dense numeric types, the GGUF (ggml) quantized block types, and Q4_0X8 /
/// Q8_0X8, which hold eight Q4_0 / Q8_0 blocks with their scales gathered in front (no GGUF id; see
/// quant::block_q4_0x8).
enum class DType : uint8_t {
  F32,
  F16,
  BF16,
  F64,
  I8,
  I16,
  I32,
  I64,
  U8,
  Q4_0,
  Q4_1,
  Q5_0,
  Q5_1,
  Q8_0,
  Q8_1,
  Q2_K,
  Q3_K,
  Q4_K,
  Q5_K,
  Q6_K,
  Q8_K,
  IQ2_XXS,
  IQ2_XS,
  IQ3_XXS,
  IQ1_S,
  IQ4_NL,
  IQ3_S,
  IQ2_S,
  IQ4_XS,
  IQ1_M,
  TQ1_0,
  TQ2_0,
  MXFP4,
  Q4_0X8,
  Q8_0X8,
};

/// Number of DType values.
inline constexpr int kDTypeCount = static_cast<int>(DType::Q8_0X8) + 1;

/// Static facts about a dtype.
struct DTypeInfo {
  std::string_view name;  ///< lower-case name, e.g. "bf16", "q4_k"
  int64_t block_size;     ///< elements per block (1 for dense types)
  int64_t block_bytes;    ///< bytes per block (the element size for dense types)
  int ggml_type;          ///< the ggml/GGUF type id, or -1 when GGUF has none
  bool is_float;          ///< dense floating point (f32, f16, bf16, f64)
};

/// The facts of `dtype`.
const DTypeInfo& info(DType dtype);
/// Lower-case name of `dtype`.
inline std::string_view name(DType dtype) { return info(dtype).name; }
/// True for the block types (block_size > 1 or otherwise not addressable per element).
inline bool is_quantized(DType dtype) { return dtype >= DType::Q4_0; }
/// True for f32, f16 and bf16: the dtypes the op kernels compute on.
inline bool is_compute_float(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}
/// Bytes of one element of a dense dtype (block bytes for block types).
inline int64_t element_size(DType dtype) { return info(dtype).block_bytes; }
/// Bytes needed to store `elements` consecutive elements; `elements` must be a multiple of the block size.
int64_t storage_bytes(DType dtype, int64_t elements);
/// The dtype with ggml type id `ggml_type`, if there is one.
std::optional<DType> dtype_from_ggml(int ggml_type);
/// The dtype called `name` (as printed by name()), if there is one.
std::optional<DType> dtype_from_name(std::string_view name);

}  // namespace metallic
