// RoPE fused with the KV-cache append on CUDA. Each (token, batch) has a few blocks that share out its
// elements; each block reads the token's position from device memory, derives the angles of its pairs into
// shared memory (rope_angles.cuh), and writes rotated q to q_out and rotated k and plain v into the caches.
#include "backend/cuda/launch.h"
#include "backend/cuda/pdl.cuh"
#include "backend/cuda/rope_angles.cuh"
#include "backend/rope.h"
#include "backend/scalar.h"

namespace metallic::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kMaxPairs = 256;

struct Strides {
  int64_t b, s, h;
};

Strides strides_of(const Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2)}; }

struct KvParams {
  const void* q;
  void* q_out;
  const void* k;
  const void* v;
  void* k_cache;
  void* v_cache;
  Strides qs, qos, ks, vs, kcs, vcs;
  const int32_t* positions;
  int hq, hkv, d, half, capacity;
  bool neox;
  RopeFrequencies freq;
};

// The work of one token, one thread per item: q's rotated pairs and unrotated tail, then (when the position
// lies in the cache) k's, then v's elements. Every thread has at most one item, so a token costs one round
// trip to memory rather than one per loop step.
__host__ __device__ inline int items_of(const KvParams& p) {
  return (p.hq + p.hkv) * (p.d - p.half) + p.hkv * p.d;
}

template <class T, class C>
__global__ void __launch_bounds__(kThreads) rope_kv_write_kernel(KvParams p) {
  __shared__ float s_cos[kMaxPairs], s_sin[kMaxPairs];
  __shared__ double s_inv_freq[kMaxPairs];
  // The frequencies depend on the options alone, so they are worked out while the producer finishes.
  for (int i = threadIdx.x; i < p.half; i += kThreads) s_inv_freq[i] = p.freq.inv_freq(i);
  wait_for_producer();
  allow_dependents();
  const int s = static_cast<int>(blockIdx.x), b = static_cast<int>(blockIdx.y);
  const int pos = p.positions[s];
  for (int i = threadIdx.x; i < p.half; i += kThreads) rope_sincos(pos, s_inv_freq[i], &s_sin[i], &s_cos[i]);
  __syncthreads();
  // Pair i of a head: elements (2i, 2i+1) interleaved, (i, i + half) in NEOX order.
  const int second = p.neox ? p.half : 1, rot = 2 * p.half, pass = p.d - rot;
  const auto rotate = [&](const T* in, C* out, int i) {
    const int a = p.neox ? i : 2 * i;
    const float x = backend::load(in[a]), y = backend::load(in[a + second]);
    out[a] = backend::store<C>(x * s_cos[i] - y * s_sin[i]);
    out[a + second] = backend::store<C>(x * s_sin[i] + y * s_cos[i]);
  };
  int item = static_cast<int>(blockIdx.z) * kThreads + static_cast<int>(threadIdx.x);
  // Handles `item` if it falls among the rotated pairs or the tail of these heads, else moves past them.
  const auto heads = [&](const T* in, int64_t in_h, C* out, int64_t out_h, int n) {
    if (item < n * p.half) {
      rotate(in + item / p.half * in_h, out + item / p.half * out_h, item % p.half);
      return true;
    }
    item -= n * p.half;
    if (item < n * pass) {
      const int h = item / pass, j = rot + item % pass;
      out[h * out_h + j] = backend::store<C>(backend::load(in[h * in_h + j]));
      return true;
    }
    item -= n * pass;
    return false;
  };
  // Pairs are read and written by one thread, so q_out may be q itself.
  const T* q = static_cast<const T*>(p.q) + b * p.qs.b + s * p.qs.s;
  C* qo = static_cast<C*>(p.q_out) + b * p.qos.b + s * p.qos.s;
  if (heads(q, p.qs.h, qo, p.qos.h, p.hq) || pos < 0 || pos >= p.capacity) return;
  const T* k = static_cast<const T*>(p.k) + b * p.ks.b + s * p.ks.s;
  C* kc = static_cast<C*>(p.k_cache) + b * p.kcs.b + static_cast<int64_t>(pos) * p.kcs.s;
  if (heads(k, p.ks.h, kc, p.kcs.h, p.hkv) || item >= p.hkv * p.d) return;
  const T* v = static_cast<const T*>(p.v) + b * p.vs.b + s * p.vs.s;
  C* vc = static_cast<C*>(p.v_cache) + b * p.vcs.b + static_cast<int64_t>(pos) * p.vcs.s;
  const int h = item / p.d, j = item % p.d;
  vc[h * p.vcs.h + j] = backend::store<C>(backend::load(v[h * p.vs.h + j]));
}

template <class T>
void launch_typed(const KvParams& p, DType cache, unsigned seq, unsigned batch, cudaStream_t stream) {
  const dim3 grid(seq, batch, static_cast<unsigned>((items_of(p) + kThreads - 1) / kThreads));
  switch (cache) {
    case DType::F32: launch_dependent(rope_kv_write_kernel<T, float>, grid, kThreads, 0, stream, p); break;
    case DType::F16: launch_dependent(rope_kv_write_kernel<T, f16>, grid, kThreads, 0, stream, p); break;
    case DType::BF16: launch_dependent(rope_kv_write_kernel<T, bf16>, grid, kThreads, 0, stream, p); break;
    default: fail(ErrorCode::NotSupported, "rope_kv_write: cache dtype ", name(cache));
  }
  MTL_CUDA_CHECK_LAUNCH("rope_kv_write_kernel");
}

}  // namespace

void rope_kv_write(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                   const RopeOptions& options, const Tensor& q_out, const Tensor& k_cache,
                   const Tensor& v_cache) {
  const int64_t half = options.rotary_dims / 2;
  check(half <= kMaxPairs, ErrorCode::NotSupported, "rope_kv_write: more than ", kMaxPairs,
        " rotated pairs per head");
  check(q.dim(1) <= INT32_MAX && q.dim(0) <= 65535 && k_cache.dim(1) <= INT32_MAX, ErrorCode::NotSupported,
        "rope_kv_write: shape ", q.shape().to_string(), " exceeds the CUDA grid limits");
  KvParams p{};
  p.q = q.data();
  p.q_out = q_out.data();
  p.k = k.data();
  p.v = v.data();
  p.k_cache = k_cache.data();
  p.v_cache = v_cache.data();
  p.qs = strides_of(q);
  p.qos = strides_of(q_out);
  p.ks = strides_of(k);
  p.vs = strides_of(v);
  p.kcs = strides_of(k_cache);
  p.vcs = strides_of(v_cache);
  p.positions = positions.data_as<int32_t>();
  p.hq = static_cast<int>(q.dim(2));
  p.hkv = static_cast<int>(k.dim(2));
  p.d = static_cast<int>(q.dim(3));
  p.half = static_cast<int>(half);
  p.capacity = static_cast<int>(k_cache.dim(1));
  p.neox = options.style == RopeStyle::Neox;
  p.freq = rope_frequencies(options);
  const auto seq = static_cast<unsigned>(q.dim(1)), batch = static_cast<unsigned>(q.dim(0));
  const cudaStream_t stream = stream_of(q);
  switch (q.dtype()) {
    case DType::F32: return launch_typed<float>(p, k_cache.dtype(), seq, batch, stream);
    case DType::F16: return launch_typed<f16>(p, k_cache.dtype(), seq, batch, stream);
    case DType::BF16: return launch_typed<bf16>(p, k_cache.dtype(), seq, batch, stream);
    default: fail(ErrorCode::NotSupported, "rope_kv_write: dtype ", name(q.dtype()));
  }
}

}  // namespace metallic::cuda
