// CUDA RoPE: nothing precomputed in memory. Each block first tabulates the pairs' frequencies in double in
// shared memory (one exp2 per pair and block, not per thread). A thread owns a group of pairs of one token
// for a chunk of heads: it derives their angles once (rope_angles.cuh) and rotates them in every head of the
// chunk with 16-byte accesses. Pass-through dimensions are copied unless rotating in place.
#include "backend/cuda/rope_angles.cuh"
#include "backend/cuda/rows.cuh"
#include "backend/rope.h"

namespace metallic::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kHeadsPerThread = 8;
// Heads loaded before the first store: more would cost registers that keep warps off the SM.
constexpr int kBatch = 4;
// Pairs whose frequencies fit the shared table; rotary dimensions beyond 2 * kTablePairs (none known)
// compute theirs per thread.
constexpr int kTablePairs = 512;

template <class T>
struct RopeParams {
  const T* x;
  T* out;
  int64_t xs[4], os[4];  // element strides of x and out
  int64_t seq, heads, chunks, rot_groups, groups, items;
  int64_t half, rot;
  int64_t position_offset;
  RopeFrequencies freq;
};

// N elements at p (column stride cs), as stored: one access when Vec, else element by element.
template <class T, int N, bool Vec>
__device__ __forceinline__ Pack<T, N> load_n(const T* p, int64_t cs) {
  if constexpr (Vec) {
    return load_pack<T, N>(p);
  } else {
    Pack<T, N> a;
#pragma unroll
    for (int e = 0; e < N; ++e) a.v[e] = p[e * cs];
    return a;
  }
}

template <class T, int N, bool Vec>
__device__ __forceinline__ void store_n(T* p, int64_t cs, const Pack<T, N>& a) {
  if constexpr (Vec) {
    store_pack<T, N>(p, a);
  } else {
#pragma unroll
    for (int e = 0; e < N; ++e) p[e * cs] = a.v[e];
  }
}

// Splits item into (token, chunk, group) in 32 bits when the grid allows (64-bit division is slow).
struct ItemIndex {
  int64_t token, chunk, group;
};

template <class T>
__device__ __forceinline__ ItemIndex split_item(const RopeParams<T>& p, int64_t item) {
  if (p.items <= 0xffffffffLL) {
    const uint32_t i = static_cast<uint32_t>(item), groups = static_cast<uint32_t>(p.groups),
                   chunks = static_cast<uint32_t>(p.chunks);
    const uint32_t rest = i / groups;
    return {rest / chunks, rest % chunks, i % groups};
  }
  return {item / p.groups / p.chunks, (item / p.groups) % p.chunks, item % p.groups};
}

// P pairs per thread; Vec: 16-byte packs (interleaved: one pack of 2P elements; neox: two packs of P).
// Each batch of kBatch heads is loaded completely before anything is stored: out may alias x, so the
// compiler could not otherwise overlap the loads of one head with the stores of the previous.
template <class T, bool Neox, int P, bool Vec>
__global__ void __launch_bounds__(kThreads) rope_kernel(RopeParams<T> p) {
  constexpr int kPass = Vec ? kVec<T> : 1;  // pass-through elements per access
  constexpr int kSpan = Neox ? P : 2 * P;   // elements per access
  __shared__ double table[kTablePairs];
  const bool tabled = p.half <= kTablePairs;
  if (tabled) {
    for (int64_t i = threadIdx.x; i < p.half; i += kThreads) table[i] = p.freq.inv_freq(i);
    __syncthreads();
  }
  for (int64_t item = int64_t{blockIdx.x} * kThreads + threadIdx.x; item < p.items;
       item += int64_t{gridDim.x} * kThreads) {
    const ItemIndex ix = split_item(p, item);
    const int64_t g = ix.group;
    const int64_t s = ix.token % p.seq, b = ix.token / p.seq;
    const int64_t h0 = ix.chunk * kHeadsPerThread;
    const int64_t h1 = h0 + kHeadsPerThread < p.heads ? h0 + kHeadsPerThread : p.heads;
    const T* x = p.x + b * p.xs[0] + s * p.xs[1];
    T* out = p.out + b * p.os[0] + s * p.os[1];
    const int64_t cx = p.xs[3], co = p.os[3];

    if (g >= p.rot_groups) {  // pass-through copy of dimensions [rot, head_dim)
      const int64_t col = p.rot + (g - p.rot_groups) * kPass;
      for (int64_t hb = h0; hb < h1; hb += kBatch) {
        Pack<T, kPass> v[kBatch];
#pragma unroll
        for (int k = 0; k < kBatch; ++k)
          if (hb + k < h1) v[k] = load_n<T, kPass, Vec>(x + (hb + k) * p.xs[2] + col * cx, cx);
#pragma unroll
        for (int k = 0; k < kBatch; ++k)
          if (hb + k < h1) store_n<T, kPass, Vec>(out + (hb + k) * p.os[2] + col * co, co, v[k]);
      }
      continue;
    }

    // Element offsets of this group's first and second accesses within a head.
    const int64_t first = Neox ? g * P : g * 2 * P, second = p.half + g * P;
    float c[P], sn[P];
    const double pos = static_cast<double>(p.position_offset + s);
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const int64_t i = g * P + k;
      rope_sincos(pos, tabled ? table[i] : p.freq.inv_freq(i), &sn[k], &c[k]);
    }

    for (int64_t hb = h0; hb < h1; hb += kBatch) {
      // Staged as stored (16 bytes per access), widened when used.
      Pack<T, kSpan> a[kBatch];
      Pack<T, P> bb[kBatch];
#pragma unroll
      for (int k = 0; k < kBatch; ++k)
        if (hb + k < h1) {
          const T* xh = x + (hb + k) * p.xs[2];
          a[k] = load_n<T, kSpan, Vec>(xh + first * cx, cx);
          if constexpr (Neox) bb[k] = load_n<T, P, Vec>(xh + second * cx, cx);
        }
#pragma unroll
      for (int k = 0; k < kBatch; ++k)
        if (hb + k < h1) {
          T* oh = out + (hb + k) * p.os[2];
          float u[kSpan];
          widen(a[k], u);
          if constexpr (Neox) {
            float w[P], ra[P], rb[P];
            widen(bb[k], w);
#pragma unroll
            for (int e = 0; e < P; ++e) {
              ra[e] = u[e] * c[e] - w[e] * sn[e];
              rb[e] = u[e] * sn[e] + w[e] * c[e];
            }
            store_n<T, P, Vec>(oh + first * co, co, pack_from_f32<T, P>(ra));
            store_n<T, P, Vec>(oh + second * co, co, pack_from_f32<T, P>(rb));
          } else {
            float r[2 * P];
#pragma unroll
            for (int e = 0; e < P; ++e) {
              r[2 * e] = u[2 * e] * c[e] - u[2 * e + 1] * sn[e];
              r[2 * e + 1] = u[2 * e] * sn[e] + u[2 * e + 1] * c[e];
            }
            store_n<T, 2 * P, Vec>(oh + first * co, co, pack_from_f32<T, 2 * P>(r));
          }
        }
    }
  }
}

template <class T>
void launch(const Tensor& x, const RopeOptions& options, const Tensor& out) {
  RopeParams<T> p{};
  p.x = x.data_as<T>();
  p.out = out.data_as<T>();
  for (int d = 0; d < 4; ++d) {
    p.xs[d] = x.stride(d);
    p.os[d] = out.stride(d);
  }
  const int64_t batch = x.dim(0), dim = x.dim(3);
  p.seq = x.dim(1);
  p.heads = x.dim(2);
  p.rot = options.rotary_dims;
  p.half = p.rot / 2;
  p.position_offset = options.position_offset;
  p.freq = rope_frequencies(options);
  p.chunks = (p.heads + kHeadsPerThread - 1) / kHeadsPerThread;
  const bool neox = options.style == RopeStyle::Neox;
  const bool in_place = x.data() == out.data() && x.strides() == out.strides();

  constexpr int V = kVec<T>;
  bool vec = dim % V == 0 && (neox ? p.half % V == 0 : p.rot % V == 0);
  for (const Tensor* t : {&x, &out}) {
    vec = vec && t->stride(3) == 1 && reinterpret_cast<uintptr_t>(t->data()) % 16 == 0;
    for (int d = 0; d < 3; ++d) vec = vec && t->stride(d) % V == 0;
  }
  const int pairs = vec ? (neox ? V : V / 2) : 1;
  const int pass = vec ? V : 1;
  p.rot_groups = p.half / pairs;
  p.groups = p.rot_groups + (in_place ? 0 : (dim - p.rot) / pass);
  p.items = batch * p.seq * p.chunks * p.groups;
  if (p.items == 0) return;
  const int64_t blocks = (p.items + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(blocks > 65535 * 64 ? 65535 * 64 : blocks);
  const cudaStream_t stream = stream_of(x);
  if (vec && neox)
    rope_kernel<T, true, V, true><<<grid, kThreads, 0, stream>>>(p);
  else if (vec)
    rope_kernel<T, false, V / 2, true><<<grid, kThreads, 0, stream>>>(p);
  else if (neox)
    rope_kernel<T, true, 1, false><<<grid, kThreads, 0, stream>>>(p);
  else
    rope_kernel<T, false, 1, false><<<grid, kThreads, 0, stream>>>(p);
  MTL_CUDA_CHECK_LAUNCH("rope_kernel");
}

}  // namespace

void rope(const Tensor& x, const RopeOptions& options, const Tensor& out) {
  switch (x.dtype()) {
    case DType::F32: return launch<float>(x, options, out);
    case DType::F16: return launch<f16>(x, options, out);
    case DType::BF16: return launch<bf16>(x, options, out);
    default: fail(ErrorCode::NotSupported, "rope: dtype ", name(x.dtype()), " is not supported");
  }
}

}  // namespace metallic::cuda
