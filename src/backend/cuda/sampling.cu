// Token sampling on CUDA without copying the logits to the host. Greedy is a block-wide argmax per slice of
// the row, merged by the last block. Otherwise the (penalised) logits are sorted with their ids by CUB's
// stable radix sort (equal logits keep id order, as the CPU's comparison does), and one block then works on
// the sorted prefix: probabilities in double, prefix sums for top-p, the min-p cut, and the Gumbel-max draw.
// Every step is stream-ordered and sized from the vocabulary alone, so the calls can be captured into a
// graph.
#include <algorithm>
#include <cub/device/device_radix_sort.cuh>

#include "backend/cuda/counters.h"
#include "backend/cuda/launch.h"
#include "backend/cuda/pdl.cuh"
#include "backend/sampling.h"
#include "metallic/core/memory_pool.h"

namespace metallic::cuda {
namespace {

constexpr int kThreads = 1024;

__device__ __forceinline__ float finite_or_neg_inf(float x) { return isnan(x) ? -INFINITY : x; }

// Keys for the sort (NaN as -inf) and ids 0..V-1.
__global__ void prepare_kernel(const float* logits, int v, float* keys, int32_t* ids) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < v; i += gridDim.x * blockDim.x) {
    keys[i] = finite_or_neg_inf(logits[i]);
    ids[i] = i;
  }
}

// One thread per window slot; the first occurrence of each id applies its penalty for all of them.
__global__ void penalty_kernel(const float* logits, int v, const int32_t* recent, int w, SamplingOptions o,
                               float* keys) {
  for (int i = threadIdx.x; i < w; i += blockDim.x) {
    const int32_t t = recent[i];
    if (t < 0 || t >= v) continue;
    bool first = true;
    int count = 0;
    for (int j = 0; j < w; ++j) {
      if (recent[j] != t) continue;
      first = first && j >= i;
      ++count;
    }
    if (first)
      keys[t] = finite_or_neg_inf(
          backend::penalize(logits[t], count, o.repeat_penalty, o.presence_penalty, o.frequency_penalty));
  }
}

// Block-wide reduction of (value, index) to the largest value, lowest index on ties.
template <class V>
__device__ void block_argmax(V& value, int& index) {
  __shared__ V s_value[kThreads / 32];
  __shared__ int s_index[kThreads / 32];
  const auto better = [](V a, int ia, V b, int ib) {
    return ib >= 0 && (ia < 0 || b > a || (b == a && ib < ia));
  };
  for (int off = 16; off > 0; off >>= 1) {
    const V ov = __shfl_down_sync(0xffffffffu, value, off);
    const int oi = __shfl_down_sync(0xffffffffu, index, off);
    if (better(value, index, ov, oi)) value = ov, index = oi;
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) s_value[warp] = value, s_index[warp] = index;
  __syncthreads();
  if (warp == 0) {
    value = lane < kThreads / 32 ? s_value[lane] : V{};
    index = lane < kThreads / 32 ? s_index[lane] : -1;
    for (int off = 16; off > 0; off >>= 1) {
      const V ov = __shfl_down_sync(0xffffffffu, value, off);
      const int oi = __shfl_down_sync(0xffffffffu, index, off);
      if (better(value, index, ov, oi)) value = ov, index = oi;
    }
  }
}

// Greedy: the first index of the largest non-NaN key; -1 when that is -inf. Block b reads keys
// [b * per, (b + 1) * per) (per a multiple of 4, so a 16-byte aligned row stays aligned in every slice) with
// 16-byte loads where it can, each thread visiting its indices in increasing order, which keeps the first of
// equal keys. With several blocks each leaves its (key, index) in `part`, and the last to finish (counted
// on `counter`, which it puts back to zero) reduces them, lowest block first.
__global__ void __launch_bounds__(kThreads)
    argmax_kernel(const float* __restrict__ keys, int v, int per, float* part_key, int* part_index,
                  int* counter, int32_t* out) {
  wait_for_producer();
  const int lo = static_cast<int>(blockIdx.x) * per, hi = min(v, lo + per);
  float best = -INFINITY;
  int index = -1;
  const auto visit = [&](float x, int i) {
    x = finite_or_neg_inf(x);
    if (index < 0 || x > best) best = x, index = i;
  };
  const int n4 = reinterpret_cast<uintptr_t>(keys) % 16 == 0 && hi > lo ? (hi - lo) / 4 : 0;
  const auto* keys4 = reinterpret_cast<const float4*>(keys + lo);
#pragma unroll 4
  for (int i = threadIdx.x; i < n4; i += kThreads) {
    const float4 x = keys4[i];
    visit(x.x, lo + 4 * i);
    visit(x.y, lo + 4 * i + 1);
    visit(x.z, lo + 4 * i + 2);
    visit(x.w, lo + 4 * i + 3);
  }
  for (int i = lo + 4 * n4 + static_cast<int>(threadIdx.x); i < hi; i += kThreads) visit(keys[i], i);
  block_argmax(best, index);
  if (gridDim.x > 1) {
    if (threadIdx.x == 0) part_key[blockIdx.x] = best, part_index[blockIdx.x] = index;
    if (!last_block_to_finish(counter, static_cast<int>(gridDim.x))) return;
    const bool mine = threadIdx.x < gridDim.x;
    best = mine ? __ldcg(part_key + threadIdx.x) : -INFINITY;
    index = mine ? __ldcg(part_index + threadIdx.x) : -1;
    block_argmax(best, index);
  }
  if (threadIdx.x == 0) *out = index >= 0 && best != -INFINITY ? index : -1;
}

// argmax_kernel over keys [v] into *out; several blocks keep their partial results in pool scratch (the
// caller releases it).
void launch_argmax(const Tensor& like, const float* keys, int v, int32_t* out, cudaStream_t s) {
  // About two 16-byte loads per thread, so that one round trip reads the row (a single block would wait out
  // a dozen in turn over a 150k vocabulary).
  const int blocks = std::clamp((v + 8 * kThreads - 1) / (8 * kThreads), 1, kThreads);
  const int per = (v + 4 * blocks - 1) / (4 * blocks) * 4;
  float* part_key = nullptr;
  int *part_index = nullptr, *counter = nullptr;
  if (blocks > 1) {
    const Tensor part = Tensor::empty(like.context(), {2 * blocks}, DType::F32, Storage::Pool);
    part_key = part.data_as<float>();
    part_index = reinterpret_cast<int*>(part_key + blocks);
    counter = zeroed_counters(like, 1, "argmax", s);
  }
  launch_dependent(argmax_kernel, static_cast<unsigned>(blocks), kThreads, 0, s, keys, v, per, part_key,
                   part_index, counter, out);
}

// Block-wide exclusive prefix sum of one double per thread, in a fixed order (deterministic).
__device__ double block_exclusive_scan(double x, double& total) {
  __shared__ double s_warp[kThreads / 32];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  double inc = x;
  for (int off = 1; off < 32; off <<= 1) {
    const double y = __shfl_up_sync(0xffffffffu, inc, off);
    if (lane >= off) inc += y;
  }
  if (lane == 31) s_warp[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    double w = s_warp[lane];
    for (int off = 1; off < 32; off <<= 1) {
      const double y = __shfl_up_sync(0xffffffffu, w, off);
      if (lane >= off) w += y;
    }
    s_warp[lane] = w;  // inclusive over warps
  }
  __syncthreads();
  total = s_warp[kThreads / 32 - 1];
  return (warp > 0 ? s_warp[warp - 1] : 0.0) + inc - x;
}

__device__ int block_min(int x) {
  __shared__ int s_min[kThreads / 32];
  for (int off = 16; off > 0; off >>= 1) x = min(x, __shfl_down_sync(0xffffffffu, x, off));
  if ((threadIdx.x & 31) == 0) s_min[threadIdx.x >> 5] = x;
  __syncthreads();
  if (threadIdx.x < 32) {
    x = s_min[threadIdx.x];
    for (int off = 16; off > 0; off >>= 1) x = min(x, __shfl_down_sync(0xffffffffu, x, off));
    if (threadIdx.x == 0) s_min[0] = x;
  }
  __syncthreads();
  const int result = s_min[0];
  __syncthreads();
  return result;
}

// Truncation and draw over the sorted candidates; each thread owns a contiguous run of ranks.
__global__ void __launch_bounds__(kThreads)
    draw_kernel(const float* keys, const int32_t* ids, int v, SamplingOptions o, const int64_t* draw,
                int32_t* out) {
  const int n = o.top_k > 0 ? min(o.top_k, v) : v;
  const float top = keys[0];
  if (!isfinite(top)) {
    if (threadIdx.x == 0) *out = -1;
    return;
  }
  const int per = (n + kThreads - 1) / kThreads;
  const int lo = min(n, static_cast<int>(threadIdx.x) * per), hi = min(n, lo + per);
  const auto prob = [&](int i) { return exp(static_cast<double>(keys[i] - top)); };
  double local = 0;
  for (int i = lo; i < hi; ++i) local += prob(i);
  double total;
  double cum = block_exclusive_scan(local, total);
  int keep = n;
  if (o.top_p < 1) {
    int cut = n;
    for (int i = lo; i < hi; ++i) {
      cum += prob(i);
      if (cum / total >= o.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = min(keep, block_min(cut));
  }
  if (o.min_p > 0) {
    int cut = n;
    for (int i = max(lo, 1); i < hi; ++i)
      if (prob(i) < o.min_p) {
        cut = i;
        break;
      }
    keep = min(keep, block_min(cut));
  }
  double best = -INFINITY;
  int rank = -1;
  for (int i = lo; i < min(hi, keep); ++i) {
    const double s = backend::gumbel_score(keys[i], top, o.temperature, o.seed, *draw, ids[i]);
    if (rank < 0 || s > best) best = s, rank = i;
  }
  block_argmax(best, rank);
  if (threadIdx.x == 0) *out = ids[rank];
}

}  // namespace

void sample_token(const Tensor& logits, const Tensor& recent, const Tensor& draw, const SamplingOptions& o,
                  const Tensor& out) {
  const cudaStream_t s = stream_of(logits);
  const int v = static_cast<int>(logits.numel());
  const float* z = logits.data_as<float>();
  int32_t* result = out.data_as<int32_t>();
  const bool penalties =
      recent.defined() && (o.repeat_penalty != 1.0f || o.presence_penalty != 0 || o.frequency_penalty != 0);
  const bool greedy = o.temperature <= 0;
  MemoryPool& pool = logits.context()->pool();
  const MemoryPool::Mark mark = pool.mark();
  if (greedy && !penalties) {
    launch_argmax(logits, z, v, result, s);
    pool.release(mark);  // stream order makes the scratch reusable by later work on this stream
    return;
  }
  const auto scratch = [&](DType t) { return Tensor::empty(logits.context(), {v}, t, Storage::Pool); };
  const Tensor keys = scratch(DType::F32), ids = scratch(DType::I32);
  const unsigned grid = static_cast<unsigned>(std::min((v + 255) / 256, 1024));
  prepare_kernel<<<grid, 256, 0, s>>>(z, v, keys.data_as<float>(), ids.data_as<int32_t>());
  MTL_CUDA_CHECK_LAUNCH("sample_token: prepare_kernel");
  if (penalties) {
    penalty_kernel<<<1, 256, 0, s>>>(z, v, recent.data_as<int32_t>(), static_cast<int>(recent.numel()), o,
                                     keys.data_as<float>());
    MTL_CUDA_CHECK_LAUNCH("sample_token: penalty_kernel");
  }
  if (greedy) {
    launch_argmax(logits, keys.data_as<float>(), v, result, s);
    pool.release(mark);
    return;
  }
  const Tensor sorted_keys = scratch(DType::F32), sorted_ids = scratch(DType::I32);
  size_t temp_bytes = 0;
  MTL_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(
      nullptr, temp_bytes, keys.data_as<float>(), sorted_keys.data_as<float>(), ids.data_as<int32_t>(),
      sorted_ids.data_as<int32_t>(), v, 0, 32, s));
  const auto temp = pool.allocate(temp_bytes);
  MTL_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(
      temp->data(), temp_bytes, keys.data_as<float>(), sorted_keys.data_as<float>(), ids.data_as<int32_t>(),
      sorted_ids.data_as<int32_t>(), v, 0, 32, s));
  draw_kernel<<<1, kThreads, 0, s>>>(sorted_keys.data_as<float>(), sorted_ids.data_as<int32_t>(), v, o,
                                     draw.data_as<int64_t>(), result);
  MTL_CUDA_CHECK_LAUNCH("sample_token: draw_kernel");
  pool.release(mark);
}

}  // namespace metallic::cuda
