// Q4_0 / Q8_0 weights into their grouped layout on the device (a load-time step). One thread per 16-bit word
// of the output, so that a warp writes 64 contiguous bytes and reads runs of one block's words (the blocks
// are only 2-byte aligned).
#include "backend/cuda/check.h"
#include "backend/cuda/launch.h"
#include "backend/matmul.h"
#include "metallic/model/quant_blocks.h"

namespace metallic::cuda {
namespace {

// Word w of a group: w < 8 is block w's scale, the rest are the blocks' quants in order.
template <class Block>
__global__ void group_blocks_kernel(const uint16_t* __restrict__ in, uint16_t* __restrict__ out,
                                    int64_t words) {
  constexpr int kBlockWords = sizeof(Block) / 2, kQuantWords = kBlockWords - 1, kGroupWords = 8 * kBlockWords;
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= words) return;
  const int64_t g = i / kGroupWords;
  const int w = static_cast<int>(i - g * kGroupWords);
  const int block = w < 8 ? w : (w - 8) / kQuantWords, word = w < 8 ? 0 : 1 + (w - 8) % kQuantWords;
  out[i] = in[(8 * g + block) * kBlockWords + word];
}

}  // namespace

void group_blocks(const Tensor& w, const Tensor& out) {
  const int64_t words = w.nbytes() / 2;
  const auto grid = static_cast<unsigned>((words + 255) / 256);
  const auto* in = static_cast<const uint16_t*>(w.data());
  auto* o = static_cast<uint16_t*>(out.data());
  cudaStream_t s = stream_of(out);
  if (w.dtype() == DType::Q4_0)
    group_blocks_kernel<quant::block_q4_0><<<grid, 256, 0, s>>>(in, o, words);
  else
    group_blocks_kernel<quant::block_q8_0><<<grid, 256, 0, s>>>(in, o, words);
  MTL_CUDA_CHECK_LAUNCH("group_blocks");
}

}  // namespace metallic::cuda
