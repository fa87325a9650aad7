// CUDA attention: picks the fused tensor-core prefill kernel (attention_flash.cu), the split-K decode
// kernel for a few queries against a long cache, or a general one-warp-per-query kernel for every other
// case (f32, other head sizes, unaligned rows).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "backend/attention.h"
#include "backend/cuda/attention_impl.cuh"
#include "backend/cuda/launch.h"
#include "backend/scalar.h"
#include "metallic/core/context.h"

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
  int64_t key_end = p.sk;
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
  T* out = static_cast<T*>(p.out) + b * p.o_stride[0] + h * p.o_stride[1] + i * p.o_stride[2];
#pragma unroll
  for (int c = 0; c < kPerLane; ++c) {
    const int d = lane + 32 * c;
    if (d < p.d) out[d] = backend::store<T>(acc[c] * inv);
  }
}

// ---- Split-K decode: a few queries against a long cache. ----
//
// CTA (chunk, kv head x row group, batch) reads keys [chunk start, chunk end) of one kv head once for
// all the query rows that share it (q heads of the group times Sq queries, up to RMAX per CTA). Tiles of
// K and V stream through a cp.async ring of shared-memory stages so that many bytes stay in flight
// without holding registers. D / 8 lanes hold one key row as 16-byte vectors; the CTA's 128 / (D / 8)
// lane groups take interleaved keys of each tile and keep their own running max, sum and output, merged
// in shared memory at the end. With several chunks the per-chunk results go to scratch and a second
// kernel merges them.

constexpr int kDecodeThreads = 128;
constexpr int kDecodeUnroll = 4;  // keys per lane group per tile
constexpr int kDecodeStages = 4;  // ring depth: three tiles in flight while one is consumed

__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(
                   static_cast<uint32_t>(__cvta_generic_to_shared(dst))),
               "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

template <class T>
__device__ __forceinline__ void unpack8(const uint4& raw, float (&f)[8]) {
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    if constexpr (std::is_same_v<T, bf16>) {
      f[2 * e] = __uint_as_float(w[e] << 16);
      f[2 * e + 1] = __uint_as_float(w[e] & 0xffff0000u);
    } else {
      const float2 x = __half22float2(*reinterpret_cast<const __half2*>(&w[e]));
      f[2 * e] = x.x;
      f[2 * e + 1] = x.y;
    }
  }
}

template <int D>
constexpr int decode_tile_keys() {
  return kDecodeThreads / (D / 8) * kDecodeUnroll;
}
template <class T, int D>
constexpr int decode_smem_bytes() {
  return kDecodeStages * 2 * decode_tile_keys<D>() * D * static_cast<int>(sizeof(T));
}

template <class T, int D, int RMAX>
__global__ void __launch_bounds__(kDecodeThreads, RMAX <= 4 ? 3 : 2)
    decode_kernel(Params p, int row_groups, int64_t keys, int64_t chunk_len, float* part_acc,
                  float* part_ml) {
  constexpr int kLanes = D / 8;                     // lanes per key row
  constexpr int kGroups = kDecodeThreads / kLanes;  // key groups per CTA
  constexpr int kTile = decode_tile_keys<D>();
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* ring = reinterpret_cast<T*>(smem_raw);  // [stage][K, V][kTile][D]

  const int tid = static_cast<int>(threadIdx.x);
  const int kg = tid / kLanes, lk = tid % kLanes;
  const int chunk = static_cast<int>(blockIdx.x), n_chunks = static_cast<int>(gridDim.x);
  const int kvh = static_cast<int>(blockIdx.y) / row_groups, rg = static_cast<int>(blockIdx.y) % row_groups;
  const int b = static_cast<int>(blockIdx.z);
  const int rows_total = p.group * p.sq;
  const int r0 = rg * RMAX;
  const int rows = min(RMAX, rows_total - r0);

  const T* k = static_cast<const T*>(p.k) + b * p.k_stride[0] + kvh * p.k_stride[1];
  const T* v = static_cast<const T*>(p.v) + b * p.v_stride[0] + kvh * p.v_stride[1];
  const int64_t k0 = chunk * chunk_len, k1 = std::min<int64_t>(keys, k0 + chunk_len);
  const int n_tiles = static_cast<int>((k1 - k0 + kTile - 1) / kTile);

  const auto load_tile = [&](int tile) {
    if (tile < n_tiles) {
      T* ks = ring + (tile % kDecodeStages) * 2 * kTile * D;
      T* vs = ks + kTile * D;
#pragma unroll
      for (int it = 0; it < kTile * kLanes / kDecodeThreads; ++it) {
        const int idx = tid + it * kDecodeThreads;
        const int row = idx / kLanes, c = idx % kLanes;
        const int64_t j = k0 + static_cast<int64_t>(tile) * kTile + row;
        const bool inside = j < k1;
        cp_async16(ks + row * D + c * 8, inside ? k + j * p.k_stride[2] + c * 8 : k, inside ? 16 : 0);
        cp_async16(vs + row * D + c * 8, inside ? v + j * p.v_stride[2] + c * 8 : v, inside ? 16 : 0);
      }
    }
    cp_async_commit();  // empty groups keep the wait count uniform
  };
#pragma unroll
  for (int s = 0; s < kDecodeStages - 1; ++s) load_tile(s);

  // Row rr of this CTA is query qi[rr] of q head qh[rr].
  int qh[RMAX], qi[RMAX];
  float qf[RMAX][8];
#pragma unroll
  for (int rr = 0; rr < RMAX; ++rr) {
    const int r = min(r0 + rr, rows_total - 1);
    qh[rr] = kvh * p.group + r / p.sq;
    qi[rr] = r % p.sq;
    const T* q =
        static_cast<const T*>(p.q) + b * p.q_stride[0] + qh[rr] * p.q_stride[1] + qi[rr] * p.q_stride[2];
    unpack8<T>(*reinterpret_cast<const uint4*>(q + lk * 8), qf[rr]);
#pragma unroll
    for (int e = 0; e < 8; ++e) qf[rr][e] *= p.scale_log2;
  }
  float m[RMAX], l[RMAX], acc[RMAX][8];
#pragma unroll
  for (int rr = 0; rr < RMAX; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[rr][e] = 0.0f;
  }

  for (int tile = 0; tile < n_tiles; ++tile) {
    cp_async_wait<kDecodeStages - 2>();
    __syncthreads();
    load_tile(tile + kDecodeStages - 1);  // into the stage every thread finished reading last iteration
    const T* ks = ring + (tile % kDecodeStages) * 2 * kTile * D;
    const T* vs = ks + kTile * D;
    const int64_t base = k0 + static_cast<int64_t>(tile) * kTile;

    float s[RMAX][kDecodeUnroll];
#pragma unroll
    for (int u = 0; u < kDecodeUnroll; ++u) {
      float kf[8];
      unpack8<T>(*reinterpret_cast<const uint4*>(ks + (u * kGroups + kg) * D + lk * 8), kf);
#pragma unroll
      for (int rr = 0; rr < RMAX; ++rr) {
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) dot += qf[rr][e] * kf[e];
        s[rr][u] = dot;
      }
    }
#pragma unroll
    for (int rr = 0; rr < RMAX; ++rr)
#pragma unroll
      for (int u = 0; u < kDecodeUnroll; ++u)
#pragma unroll
        for (int off = kLanes / 2; off > 0; off >>= 1)
          s[rr][u] += __shfl_xor_sync(0xffffffffu, s[rr][u], off);

#pragma unroll
    for (int rr = 0; rr < RMAX; ++rr) {
      if (rr >= rows) break;
      float mx = m[rr];
#pragma unroll
      for (int u = 0; u < kDecodeUnroll; ++u) {
        const int64_t j = base + u * kGroups + kg;
        float x = s[rr][u];
        if (j < k1 && p.mask)
          x +=
              kLog2e *
              p.mask[b * p.m_stride[0] + qh[rr] * p.m_stride[1] + qi[rr] * p.m_stride[2] + j * p.m_stride[3]];
        if (j >= k1 || (p.causal && j > qi[rr] + p.query_offset)) x = -INFINITY;
        s[rr][u] = x;
        mx = fmaxf(mx, x);
      }
      if (mx == -INFINITY) continue;
      const float corr = exp2f(m[rr] - mx);
      float sum = 0.0f;
#pragma unroll
      for (int u = 0; u < kDecodeUnroll; ++u) sum += (s[rr][u] = exp2f(s[rr][u] - mx));
      l[rr] = l[rr] * corr + sum;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[rr][e] *= corr;
      m[rr] = mx;
    }
#pragma unroll
    for (int u = 0; u < kDecodeUnroll; ++u) {
      float vf[8];
      unpack8<T>(*reinterpret_cast<const uint4*>(vs + (u * kGroups + kg) * D + lk * 8), vf);
#pragma unroll
      for (int rr = 0; rr < RMAX; ++rr) {
        if (rr >= rows) break;
        // Rows that saw nothing yet hold -inf scores; their weights must stay zero.
        const float w = m[rr] == -INFINITY ? 0.0f : s[rr][u];
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[rr][e] += w * vf[e];
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the ring is reused below for the merge

  float* s_m = reinterpret_cast<float*>(smem_raw);  // [kGroups][RMAX]
  float* s_l = s_m + kGroups * RMAX;                // [kGroups][RMAX]
  float* s_acc = s_l + kGroups * RMAX;              // [kGroups][RMAX][D]
#pragma unroll
  for (int rr = 0; rr < RMAX; ++rr) {
    if (lk == 0) {
      s_m[kg * RMAX + rr] = m[rr];
      s_l[kg * RMAX + rr] = l[rr];
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) s_acc[(kg * RMAX + rr) * D + lk * 8 + e] = acc[rr][e];
  }
  __syncthreads();
  for (int idx = tid; idx < rows * D; idx += kDecodeThreads) {
    const int rr = idx / D, d = idx % D;
    float mx = -INFINITY;
    for (int gi = 0; gi < kGroups; ++gi) mx = fmaxf(mx, s_m[gi * RMAX + rr]);
    float sum = 0.0f, a = 0.0f;
    if (mx != -INFINITY) {
      for (int gi = 0; gi < kGroups; ++gi) {
        const float w = exp2f(s_m[gi * RMAX + rr] - mx);
        sum += w * s_l[gi * RMAX + rr];
        a += w * s_acc[(gi * RMAX + rr) * D + d];
      }
    }
    const int r = r0 + rr;
    const int h = kvh * p.group + r / p.sq, i = r % p.sq;
    if (n_chunks == 1) {
      T* out = static_cast<T*>(p.out) + b * p.o_stride[0] + h * p.o_stride[1] + i * p.o_stride[2];
      out[d] = backend::store<T>(sum > 0.0f ? a / sum : 0.0f);
    } else {
      const int64_t slot = ((static_cast<int64_t>(b) * p.hq + h) * p.sq + i) * n_chunks + chunk;
      part_acc[slot * D + d] = a;
      if (d == 0) {
        part_ml[2 * slot] = mx;
        part_ml[2 * slot + 1] = sum;
      }
    }
  }
}

// Merges the per-chunk results of one query row (blockDim.x = D threads).
template <class T>
__global__ void decode_combine_kernel(Params p, int n_chunks, const float* part_acc, const float* part_ml) {
  const int64_t row = blockIdx.x;
  const int d = static_cast<int>(threadIdx.x);
  const float* ml = part_ml + row * n_chunks * 2;
  float mx = -INFINITY;
  for (int c = 0; c < n_chunks; ++c) mx = fmaxf(mx, ml[2 * c]);
  float sum = 0.0f, a = 0.0f;
  if (mx != -INFINITY) {
    for (int c = 0; c < n_chunks; ++c) {
      const float w = exp2f(ml[2 * c] - mx);
      sum += w * ml[2 * c + 1];
      a += w * part_acc[(row * n_chunks + c) * p.d + d];
    }
  }
  const int i = static_cast<int>(row % p.sq);
  const int h = static_cast<int>((row / p.sq) % p.hq);
  const int b = static_cast<int>(row / (static_cast<int64_t>(p.sq) * p.hq));
  T* out = static_cast<T*>(p.out) + b * p.o_stride[0] + h * p.o_stride[1] + i * p.o_stride[2];
  out[d] = backend::store<T>(sum > 0.0f ? a / sum : 0.0f);
}

constexpr int kDecodeMaxQueries = 8;

int sm_count(int device) {
  int n = 0;
  MTL_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
  return n;
}

template <class T, int D, int RMAX>
void launch_decode(const Params& p, const Tensor& q, cudaStream_t stream) {
  const int rows_total = p.group * p.sq;
  const int row_groups = (rows_total + RMAX - 1) / RMAX;
  // Causal rows never see keys past the last query's position.
  int64_t keys = p.sk;
  if (p.causal) keys = std::clamp<int64_t>(p.sq + p.query_offset, 0, p.sk);
  // Enough CTAs for several waves over every multiprocessor, but chunks of at least 128 keys.
  const int64_t base_ctas = static_cast<int64_t>(p.batch) * p.hkv * row_groups;
  const int64_t want = (16 * static_cast<int64_t>(sm_count(q.device().index)) + base_ctas - 1) / base_ctas;
  const int64_t n_chunks = std::clamp<int64_t>(std::min<int64_t>(want, (keys + 127) / 128), 1, 65535);
  const int64_t chunk_len = std::max<int64_t>(1, (keys + n_chunks - 1) / n_chunks);
  Tensor part_acc, part_ml;
  if (n_chunks > 1) {
    const int64_t slots = static_cast<int64_t>(p.batch) * p.hq * p.sq * n_chunks;
    part_acc = Tensor::empty(q.context(), Shape{slots, D}, DType::F32, Storage::Pool);
    part_ml = Tensor::empty(q.context(), Shape{slots, 2}, DType::F32, Storage::Pool);
  }
  const dim3 grid(static_cast<unsigned>(n_chunks), static_cast<unsigned>(p.hkv * row_groups),
                  static_cast<unsigned>(p.batch));
  constexpr int smem = decode_smem_bytes<T, D>();
  static_assert(smem >= static_cast<int>(sizeof(float)) * (kDecodeThreads / (D / 8)) * RMAX * (D + 2),
                "the merge reuses the ring");
  MTL_CUDA_CHECK(
      cudaFuncSetAttribute(decode_kernel<T, D, RMAX>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  decode_kernel<T, D, RMAX><<<grid, kDecodeThreads, smem, stream>>>(
      p, row_groups, keys, chunk_len, n_chunks > 1 ? part_acc.data_as<float>() : nullptr,
      n_chunks > 1 ? part_ml.data_as<float>() : nullptr);
  MTL_CUDA_CHECK_LAUNCH("sdpa decode kernel");
  if (n_chunks > 1) {
    decode_combine_kernel<T>
        <<<static_cast<unsigned>(static_cast<int64_t>(p.batch) * p.hq * p.sq), D, 0, stream>>>(
            p, static_cast<int>(n_chunks), part_acc.data_as<float>(), part_ml.data_as<float>());
    MTL_CUDA_CHECK_LAUNCH("sdpa decode combine kernel");
  }
}

template <class T>
void launch_decode_typed(const Params& p, const Tensor& q, cudaStream_t stream) {
  const bool small = p.group * p.sq <= 4;
  if (p.d == 64)
    small ? launch_decode<T, 64, 4>(p, q, stream) : launch_decode<T, 64, 8>(p, q, stream);
  else
    small ? launch_decode<T, 128, 4>(p, q, stream) : launch_decode<T, 128, 8>(p, q, stream);
}

// Every row of `t` starts on a 16-byte boundary, as the vectorised kernels load it.
bool rows_aligned16(const Tensor& t) {
  const int64_t per16 = 16 / element_size(t.dtype());
  if (reinterpret_cast<uintptr_t>(t.data()) % 16 != 0) return false;
  for (int dim = 0; dim < 3; ++dim)
    if (t.dim(dim) > 1 && t.stride(dim) % per16 != 0) return false;
  return true;
}

void fill_strides(const Tensor& t, int64_t (&s)[3]) {
  for (int dim = 0; dim < 3; ++dim) s[dim] = t.stride(dim);
}

}  // namespace

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, float scale,
               bool causal, int64_t query_offset, const Tensor& out) {
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

  const bool half = q.dtype() == DType::F16 || q.dtype() == DType::BF16;
  const bool fast = half && (d == 64 || d == 128) && rows_aligned16(q) && rows_aligned16(k) &&
                    rows_aligned16(v) && rows_aligned16(out);
  if (fast && p.sq <= kDecodeMaxQueries) {
    if (q.dtype() == DType::BF16)
      launch_decode_typed<bf16>(p, q, stream);
    else
      launch_decode_typed<f16>(p, q, stream);
    return;
  }
  if (fast) {
    attn::launch_flash(p, q.dtype() == DType::BF16 ? attn::Kind::BF16 : attn::Kind::F16, stream);
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
