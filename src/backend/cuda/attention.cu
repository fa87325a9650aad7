// CUDA attention: picks the fused tensor-core prefill kernel, the split-K tensor-core decode kernel for
// a few queries against a long cache (both in attention_flash.cu), or a general one-warp-per-query kernel for
// every other case (f32, other head sizes, unaligned rows).

#include <algorithm>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "backend/attention.h"
#include "backend/cuda/attention_impl.cuh"
#include "backend/cuda/counters.h"
#include "backend/cuda/launch.h"
#include "backend/scalar.h"
#include "metallic/core/context.h"
#include "metallic/core/memory_pool.h"
#include "metallic/core/resource_cache.h"
#include "metallic/ops/copy.h"

namespace metallic::cuda {
namespace {

using attn::kLog2e;
using attn::Params;

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

// ---- General kernel: one warp per query row, online softmax over the keys one at a time. ----

constexpr int kGeneralMaxD = 256;
constexpr int kGeneralRows = 4;  // warps (query rows) per CTA

template <class T>
__global__ void __launch_bounds__(32 * kGeneralRows) general_kernel(Params p, int64_t rows) {
  constexpr int kPerLane = kGeneralMaxD / 32;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kGeneralRows + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int i = static_cast<int>(row % p.sq);
  const int h = static_cast<int>((row / p.sq) % p.hq);
  const int b = static_cast<int>(row / (static_cast<int64_t>(p.sq) * p.hq));
  const int kvh = h / p.group;
  const T* q = static_cast<const T*>(p.q) + b * p.q_stride[0] + h * p.q_stride[1] + i * p.q_stride[2];
  const T* k = static_cast<const T*>(p.k) + b * p.k_stride[0] + kvh * p.k_stride[1];
  const T* v = static_cast<const T*>(p.v) + b * p.v_stride[0] + kvh * p.v_stride[1];
  const float* mask = p.mask ? p.mask + b * p.m_stride[0] + h * p.m_stride[1] + i * p.m_stride[2] : nullptr;

  float qr[kPerLane], acc[kPerLane];
#pragma unroll
  for (int c = 0; c < kPerLane; ++c) {
    const int d = lane + 32 * c;
    qr[c] = d < p.d ? backend::load(q[d]) * p.scale_log2 : 0.0f;
    acc[c] = 0.0f;
  }
  int64_t key_end = attn::keys_of(p, b);
  if (p.causal) key_end = std::min<int64_t>(key_end, std::max<int64_t>(0, i + p.query_offset + 1));
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = 0; j < key_end; ++j) {
    const T* kj = k + j * p.k_stride[2];
    float dot = 0.0f;
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) {
      const int d = lane + 32 * c;
      if (d < p.d) dot += qr[c] * backend::load(kj[d]);
    }
    float s = warp_sum(dot);
    if (mask) s += kLog2e * mask[j * p.m_stride[3]];
    if (s == -INFINITY) continue;  // the same on every lane
    const float m_new = fmaxf(m, s);
    const float corr = exp2f(m - m_new), pj = exp2f(s - m_new);
    l = l * corr + pj;
    const T* vj = v + j * p.v_stride[2];
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) {
      const int d = lane + 32 * c;
      if (d < p.d) acc[c] = acc[c] * corr + pj * backend::load(vj[d]);
    }
    m = m_new;
  }
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  const int64_t row_offset = b * p.o_stride[0] + h * p.o_stride[1] + i * p.o_stride[2];
#pragma unroll
  for (int c = 0; c < kPerLane; ++c) {
    const int d = lane + 32 * c;
    if (d >= p.d) continue;
    if (p.out_f32)
      static_cast<float*>(p.out)[row_offset + d] = acc[c] * inv;
    else
      static_cast<T*>(p.out)[row_offset + d] = backend::store<T>(acc[c] * inv);
  }
}

// ---- Split-K decode (the kernel, with its fused merge, is in attention_flash.cu). ----

constexpr int kDecodeMaxQueries = 8;

// Chunks per 16-row tile: whole 64-key tiles each, at the least cost counted in sixteenths of a tile's time.
// A CTA streams its tiles one after another through a short ring, so short chunks spread over many
// multiprocessors finish soonest: each wave of CTAs costs its tiles plus about two of pipeline fill. A wave
// is one CTA per multiprocessor (`slots`): one CTA's ring keeps a multiprocessor's share of DRAM busy, and a
// second CTA per multiprocessor only adds chunks to merge (on an H200, B16 Hkv8 bf16: 0.88 against 0.85 of
// copy bandwidth at 4096 keys, 1.00 against 0.99 at 32768, with 128 CTAs instead of 256). The merge reads the
// chunks' partials eight at a time, one L2 round trip (about half a tile's time) per eight: a sixteenth of a
// tile per chunk. Counting it took 7B-shape decode at 4k keys from 237 to 241 tok/s on an H200. Up to
// `cluster_max` chunks merge within a cluster; more go through device memory, which adds a fence, a counter
// and two dependent L2 round trips, about two tiles' time: at 4.1k keys a KV head of the 7B shape then takes
// 14 chunks in one cluster rather than 33 (on an H200, Q4_0 decode 576.0 against 525.9 tok/s, F16 252.3
// against 241.7, and 0.5B F16 1400.3 against 1325.4).
int64_t decode_chunks(int64_t tiles_of_rows, int64_t keys, int64_t slots, int64_t cluster_max) {
  constexpr int64_t kDeviceMerge = 2 * 16;
  const int64_t tiles = std::max<int64_t>(1, (keys + 63) / 64);
  int64_t best = 1, best_cost = INT64_MAX;
  for (int64_t per = tiles; per >= 1; --per) {
    const int64_t n = (tiles + per - 1) / per;
    if (n > attn::kDecodeMaxChunks) break;
    const int64_t waves = (tiles_of_rows * n + slots - 1) / slots;
    const int64_t cost = 16 * waves * (per + 2) + n + (n > cluster_max ? kDeviceMerge : 0);
    if (cost < best_cost) {
      best = n;
      best_cost = cost;
    }
  }
  return best;
}

struct ClusterLimitKey {
  int device;
  attn::Kind kind;
  int d;
  bool operator==(const ClusterLimitKey&) const = default;
  size_t hash() const { return hash_fields(device, static_cast<int>(kind), d); }
};

struct ClusterLimit {
  int chunks;
};

// attn::decode_cluster_limit, asked of the runtime once per device and kernel.
int cluster_limit(const Tensor& q, attn::Kind kind, int d) {
  const auto entry = q.context()->cache().get_or_create<ClusterLimit>(
      ClusterLimitKey{q.device().index, kind, d},
      [&] { return std::make_shared<ClusterLimit>(ClusterLimit{attn::decode_cluster_limit(kind, d)}); });
  return entry->chunks;
}

template <class T>
void launch_decode(const Params& p, const Tensor& q, cudaStream_t stream) {
  const attn::Kind kind = std::is_same_v<T, bf16> ? attn::Kind::BF16 : attn::Kind::F16;
  attn::DecodeSplit split{};
  split.row_groups = (p.group * p.sq + 15) / 16;
  // Causal rows never see keys past the last query's position.
  split.keys = p.sk;
  if (p.causal) split.keys = std::clamp<int64_t>(p.sq + p.query_offset, 0, p.sk);
  const int64_t tiles_of_rows = static_cast<int64_t>(p.batch) * p.hkv * split.row_groups;
  const int cluster_max = cluster_limit(q, kind, p.d);
  const int64_t n_chunks = decode_chunks(tiles_of_rows, split.keys, sm_count(q.device().index), cluster_max);
  split.n_chunks = static_cast<int>(n_chunks);
  const int64_t tiles = std::max<int64_t>(1, (split.keys + 63) / 64);
  split.chunk_len = (tiles + n_chunks - 1) / n_chunks * 64;
  // Chunks that fit one cluster merge in shared memory: on an H200, 7B-shape Q4_0 decode at 520 keys (nine
  // chunks per KV head) ran at 606 against 580 tok/s with the merge through device memory, 0.5B F16 at 1642
  // against 1490.
  split.cluster = n_chunks > 1 && n_chunks <= cluster_max;
  Tensor part_acc, part_ml;
  if (n_chunks > 1 && !split.cluster) {
    const int64_t slots_out = static_cast<int64_t>(p.batch) * p.hq * p.sq * n_chunks;
    part_acc = Tensor::empty(q.context(), Shape{slots_out, p.d}, DType::F32, Storage::Pool);
    part_ml = Tensor::empty(q.context(), Shape{slots_out, 2}, DType::F32, Storage::Pool);
    split.part_acc = part_acc.data_as<float>();
    split.part_ml = part_ml.data_as<float>();
    split.counters = zeroed_counters(q, tiles_of_rows, "sdpa-decode", stream);
  }
  attn::launch_flash_decode(p, split, kind, stream);
}

void fill_strides(const Tensor& t, int64_t (&s)[3]) {
  for (int dim = 0; dim < 3; ++dim) s[dim] = t.stride(dim);
}

}  // namespace

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
               const Tensor& key_lengths, float scale, bool causal, int64_t query_offset, const Tensor& out) {
  const int64_t rows = q.dim(0) * q.dim(1) * q.dim(2);
  if (rows == 0) return;
  const int64_t d = q.dim(3);
  check(d <= kGeneralMaxD, ErrorCode::NotSupported, "sdpa: head_dim ", d, " exceeds the CUDA limit of ",
        kGeneralMaxD);
  check(q.dim(1) <= 65535 && q.dim(0) <= 65535 && k.dim(2) <= INT32_MAX && q.dim(2) <= INT32_MAX,
        ErrorCode::NotSupported, "sdpa: shape ", q.shape().to_string(), " exceeds the CUDA grid limits");
  const cudaStream_t stream = stream_of(q);

  Params p{};
  p.q = q.data();
  p.k = k.data();
  p.v = v.data();
  p.out = out.data();
  fill_strides(q, p.q_stride);
  fill_strides(k, p.k_stride);
  fill_strides(v, p.v_stride);
  fill_strides(out, p.o_stride);
  if (mask.defined()) {
    p.mask = mask.data_as<float>();
    for (int dim = 0; dim < 4; ++dim) p.m_stride[dim] = mask.stride(dim);
  }
  if (key_lengths.defined()) p.key_lengths = key_lengths.data_as<int32_t>();
  p.batch = static_cast<int>(q.dim(0));
  p.hq = static_cast<int>(q.dim(1));
  p.sq = static_cast<int>(q.dim(2));
  p.d = static_cast<int>(d);
  p.hkv = static_cast<int>(k.dim(1));
  p.sk = static_cast<int>(k.dim(2));
  p.group = p.hq / p.hkv;
  p.scale_log2 = scale * kLog2e;
  p.causal = causal;
  p.query_offset = query_offset;

  p.out_f32 = out.dtype() != q.dtype();
  const bool half = q.dtype() == DType::F16 || q.dtype() == DType::BF16;
  const bool fast = half && (d == 64 || d == 128) && rows_aligned16(q) && rows_aligned16(k) &&
                    rows_aligned16(v) && (p.out_f32 || rows_aligned16(out));
  if (fast && p.sq <= kDecodeMaxQueries) {
    if (q.dtype() == DType::BF16)
      launch_decode<bf16>(p, q, stream);
    else
      launch_decode<f16>(p, q, stream);
    return;
  }
  if (fast && !p.out_f32) {
    attn::launch_flash(p, q.dtype() == DType::BF16 ? attn::Kind::BF16 : attn::Kind::F16, stream);
    return;
  }
  if (fast) {  // the prefill kernel stores q's type: run it into scratch, then widen
    MemoryPool& pool = out.context()->pool();
    const MemoryPool::Mark mark = pool.mark();
    const Tensor o = Tensor::empty(out.context(), out.shape(), q.dtype(), Storage::Pool);
    attention(q, k, v, mask, key_lengths, scale, causal, query_offset, o);
    metallic::copy(o, out);
    pool.release(mark);
    return;
  }
  backend::visit_dense(q.dtype(), "sdpa", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, f16> || std::is_same_v<T, bf16>) {
      general_kernel<T>
          <<<static_cast<unsigned>((rows + kGeneralRows - 1) / kGeneralRows), 32 * kGeneralRows, 0, stream>>>(
              p, rows);
      MTL_CUDA_CHECK_LAUNCH("sdpa general kernel");
    } else {
      fail(ErrorCode::NotSupported, "sdpa: dtype ", name(q.dtype()), " is not supported");
    }
  });
}

}  // namespace metallic::cuda
