// Tensor maps (TMA descriptors) over [batch, heads, rows, d] attention operands, for the kernels that let the
// tensor-memory accelerator copy their tiles: one instruction moves a whole box into shared memory, laid out
// with the 128-byte swizzle that keeps ldmatrix and wgmma reads free of bank conflicts.
#pragma once

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace metallic::cuda {

/// Elements of one 128-byte swizzled column block of a 16-bit operand: a map's box is this wide.
constexpr int kTmaCols = 64;

/// The driver's tensor-map encoder, looked up once through the runtime (no link against the driver); null
/// when the driver has none.
inline PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult status{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &status) !=
            cudaSuccess ||
        status != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return PFN_cuTensorMapEncodeTiled_v12000{nullptr};
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

/// A map over a 16-bit (bf16 or f16) [batch, heads, rows, d] operand with element strides `stride` (batch,
/// head, row) whose box is `box_rows` rows of one kTmaCols-element column block, swizzled by 128 bytes;
/// rows past the end read as zeros. False when the driver cannot describe the layout.
/// Where a row spans several column blocks, L2 fills are promoted to 128 bytes, one box row: with 256 the
/// first block's copy also fetched the second's lines, and decode attention (B16 Hkv8 D128 on an H200) took
/// 0.487-0.514 ms at 32768 keys against 0.481-0.488, and 0.072-0.074 at 4096 against 0.069-0.070. Rows of
/// one block (D = 64) keep 256-byte fills, which bring the neighbouring row: 0.5B-shape decode ran at
/// 1526.8 / 1550.5 tok/s with them against 1497.0 / 1503.6 with 128-byte fills.
inline bool make_head_map(CUtensorMap& map, bool bf16, const void* data, int batch, int heads, int rows,
                          int d, const int64_t (&stride)[3], int box_rows) {
  const auto encode = tensor_map_encoder();
  if (encode == nullptr) return false;
  const cuuint64_t dims[4] = {static_cast<cuuint64_t>(d), static_cast<cuuint64_t>(rows),
                              static_cast<cuuint64_t>(heads), static_cast<cuuint64_t>(batch)};
  const int64_t outer[3] = {stride[2], stride[1], stride[0]};
  cuuint64_t strides[3];
  cuuint64_t packed = static_cast<cuuint64_t>(d) * 2;
  for (int i = 0; i < 3; ++i) {
    // An extent-1 dimension is never stepped over, so any stride serves; the packed one is always legal.
    if (dims[i + 1] > 1 && outer[i] <= 0) return false;
    strides[i] = dims[i + 1] > 1 ? static_cast<cuuint64_t>(outer[i]) * 2 : packed;
    packed = strides[i] * dims[i + 1];
  }
  const cuuint32_t box[4] = {static_cast<cuuint32_t>(kTmaCols), static_cast<cuuint32_t>(box_rows), 1, 1};
  const cuuint32_t unit[4] = {1, 1, 1, 1};
  const CUtensorMapL2promotion promotion =
      d > kTmaCols ? CU_TENSOR_MAP_L2_PROMOTION_L2_128B : CU_TENSOR_MAP_L2_PROMOTION_L2_256B;
  const CUtensorMapDataType type = bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  return encode(&map, type, 4, const_cast<void*>(data), dims, strides, box, unit,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, promotion,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace metallic::cuda
