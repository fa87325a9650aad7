// One thread per block: each decodes its block with the shared host/device decoder, so the output matches the
// CPU reference bit for bit. Dense weights are never expanded this way on the hot path; this kernel serves
// tests, tools and one-off conversions.
#include "backend/cuda/check.h"
#include "backend/cuda/dequantize.h"
#include "metallic/core/error.h"
#include "metallic/model/quant.h"
#include "metallic/model/quant_blocks.h"

namespace metallic::cuda {
namespace {

constexpr int kThreads = 256;

template <class Block>
__global__ void dequantize_kernel(const Block* src, float* dst, int64_t blocks) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b < blocks) quant::dequantize_block(src[b], dst + b * Block::kElements);
}

template <class Block>
void launch(const void* src, float* dst, int64_t n, cudaStream_t stream) {
  const int64_t blocks = n / Block::kElements;
  if (blocks == 0) return;
  const int64_t grid = (blocks + kThreads - 1) / kThreads;
  check(grid <= 0x7fffffff, ErrorCode::InvalidArgument, "cuda::dequantize: ", n, " elements is too many");
  dequantize_kernel<Block>
      <<<static_cast<unsigned>(grid), kThreads, 0, stream>>>(static_cast<const Block*>(src), dst, blocks);
  MTL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void dequantize(DType dtype, const void* src, float* dst, int64_t n, cudaStream_t stream) {
  check(quant::can_dequantize(dtype), ErrorCode::NotSupported, "cuda::dequantize: no decoder for ",
        name(dtype));
  const int64_t block = info(dtype).block_size;
  check(n >= 0 && n % block == 0, ErrorCode::InvalidArgument, "cuda::dequantize: ", n, " elements of ",
        name(dtype), " is not a multiple of its block size ", block);
  switch (dtype) {
    case DType::F32: launch<quant::block_f32>(src, dst, n, stream); break;
    case DType::F16: launch<quant::block_f16>(src, dst, n, stream); break;
    case DType::BF16: launch<quant::block_bf16>(src, dst, n, stream); break;
    case DType::Q4_0: launch<quant::block_q4_0>(src, dst, n, stream); break;
    case DType::Q4_1: launch<quant::block_q4_1>(src, dst, n, stream); break;
    case DType::Q5_0: launch<quant::block_q5_0>(src, dst, n, stream); break;
    case DType::Q5_1: launch<quant::block_q5_1>(src, dst, n, stream); break;
    case DType::Q8_0: launch<quant::block_q8_0>(src, dst, n, stream); break;
    case DType::Q8_1: launch<quant::block_q8_1>(src, dst, n, stream); break;
    case DType::Q2_K: launch<quant::block_q2_K>(src, dst, n, stream); break;
    case DType::Q3_K: launch<quant::block_q3_K>(src, dst, n, stream); break;
    case DType::Q4_K: launch<quant::block_q4_K>(src, dst, n, stream); break;
    case DType::Q5_K: launch<quant::block_q5_K>(src, dst, n, stream); break;
    case DType::Q6_K: launch<quant::block_q6_K>(src, dst, n, stream); break;
    case DType::Q8_K: launch<quant::block_q8_K>(src, dst, n, stream); break;
    case DType::Q4_0X8: launch<quant::block_q4_0x8>(src, dst, n, stream); break;
    case DType::Q8_0X8: launch<quant::block_q8_0x8>(src, dst, n, stream); break;
    default: fail(ErrorCode::Internal, "cuda::dequantize: ", name(dtype), " listed but not dispatched");
  }
}

}  // namespace metallic::cuda
