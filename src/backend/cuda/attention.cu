// CUDA attention: picks the fused tensor-core prefill kernel, the split-K tensor-core decode kernel for
// a few queries against a long cache (both in attention_flash.cu), or a general one-warp-per-query kernel for
// every other case (f32, other head sizes, unaligned rows).

#include <algorithm>
#include <cstdint>
#include <type_traits>

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

// ---- Split-K decode (the per-chunk kernel is in attention_flash.cu). ----

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

template <class T>
void launch_decode(const Params& p, const Tensor& q, cudaStream_t stream) {
  attn::DecodeSplit split{};
  split.row_groups = (p.group * p.sq + 15) / 16;
  // Causal rows never see keys past the last query's position.
  split.keys = p.sk;
  if (p.causal) split.keys = std::clamp<int64_t>(p.sq + p.query_offset, 0, p.sk);
  // Enough CTAs for several waves over every multiprocessor, but chunks of at least 128 keys.
  const int64_t base_ctas = static_cast<int64_t>(p.batch) * p.hkv * split.row_groups;
  const int64_t want = (8 * static_cast<int64_t>(sm_count(q.device().index)) + base_ctas - 1) / base_ctas;
  const int64_t n_chunks = std::clamp<int64_t>(std::min<int64_t>(want, (split.keys + 127) / 128), 1, 65535);
  split.n_chunks = static_cast<int>(n_chunks);
  split.chunk_len = std::max<int64_t>(1, (split.keys + n_chunks - 1) / n_chunks);
  Tensor part_acc, part_ml;
  if (n_chunks > 1) {
    const int64_t slots = static_cast<int64_t>(p.batch) * p.hq * p.sq * n_chunks;
    part_acc = Tensor::empty(q.context(), Shape{slots, p.d}, DType::F32, Storage::Pool);
    part_ml = Tensor::empty(q.context(), Shape{slots, 2}, DType::F32, Storage::Pool);
    split.part_acc = part_acc.data_as<float>();
    split.part_ml = part_ml.data_as<float>();
  }
  attn::launch_flash_decode(p, split, std::is_same_v<T, bf16> ? attn::Kind::BF16 : attn::Kind::F16, stream);
  if (n_chunks > 1) {
    decode_combine_kernel<T>
        <<<static_cast<unsigned>(static_cast<int64_t>(p.batch) * p.hq * p.sq), p.d, 0, stream>>>(
            p, split.n_chunks, split.part_acc, split.part_ml);
    MTL_CUDA_CHECK_LAUNCH("sdpa decode combine kernel");
  }
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
      launch_decode<bf16>(p, q, stream);
    else
      launch_decode<f16>(p, q, stream);
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
