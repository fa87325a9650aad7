// Q4_0 / Q8_0 weights into their grouped layout on the device (a load-time step): one thread per group of
// eight blocks, copying 2-byte units since GGUF blocks are only 2-byte aligned.
#include "backend/cuda/check.h"
#include "backend/cuda/launch.h"
#include "backend/matmul.h"
#include "metallic/model/quant_blocks.h"

namespace metallic::cuda {
namespace {

template <class Block, class Group>
__global__ void group_blocks_kernel(const Block* __restrict__ in, Group* __restrict__ out, int64_t groups) {
  const int64_t g = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (g >= groups) return;
  Group o;
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    const Block& b = in[8 * g + k];
    o.d[k] = b.d;
    const auto* src = reinterpret_cast<const uint16_t*>(b.qs);
    auto* dst = reinterpret_cast<uint16_t*>(o.qs[k]);
#pragma unroll
    for (int i = 0; i < static_cast<int>(sizeof(b.qs)) / 2; ++i) dst[i] = src[i];
  }
  out[g] = o;
}

}  // namespace

void group_blocks(const Tensor& w, const Tensor& out) {
  const int64_t groups = w.numel() / quant::kQK;
  const auto grid = static_cast<unsigned>((groups + 255) / 256);
  cudaStream_t s = stream_of(out);
  if (w.dtype() == DType::Q4_0)
    group_blocks_kernel<<<grid, 256, 0, s>>>(static_cast<const quant::block_q4_0*>(w.data()),
                                              static_cast<quant::block_q4_0x8*>(out.data()), groups);
  else
    group_blocks_kernel<<<grid, 256, 0, s>>>(static_cast<const quant::block_q8_0*>(w.data()),
                                              static_cast<quant::block_q8_0x8*>(out.data()), groups);
  MTL_CUDA_CHECK_LAUNCH("group_blocks");
}

}  // namespace metallic::cuda
