// CUDA kernels for arithmetic, copies, fills and random draws: grid-stride loops over strided views,
// using the same conversion and random-number code as the CPU reference, so results agree bit for bit.
#include <algorithm>
#include <initializer_list>
#include <type_traits>

#include "backend/cuda/launch.h"
#include "backend/cuda/pdl.cuh"
#include "backend/cuda/rows.cuh"
#include "backend/elementwise.h"
#include "backend/random.h"
#include "backend/scalar.h"

namespace metallic::cuda {
namespace {

using backend::load;
using backend::store;

constexpr int kThreads = 256;

template <class T>
__global__ void binary_kernel(BinaryOp op, const T* a, const T* b, T* out, int64_t n, Indexer<3> ix) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    int64_t o[3];
    ix.offsets(i, o);
    out[o[2]] = store<T>(backend::apply_binary(op, load(a[o[0]]), load(b[o[1]])));
  }
}

template <class T>
__global__ void binary_scalar_kernel(BinaryOp op, const T* a, backend::compute_t<T> s, bool scalar_first,
                                     T* out, int64_t n, Indexer<2> ix) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    int64_t o[2];
    ix.offsets(i, o);
    const auto x = load(a[o[0]]);
    out[o[1]] = store<T>(scalar_first ? backend::apply_binary(op, s, x) : backend::apply_binary(op, x, s));
  }
}

template <class S, class D>
__global__ void copy_kernel(const S* src, D* dst, int64_t n, Indexer<2> ix) {
  wait_for_producer();
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    int64_t o[2];
    ix.offsets(i, o);
    dst[o[1]] = backend::convert<D>(src[o[0]]);
  }
}

// Dense operands of one shape move in packs of W elements (16 bytes of the widest type): load(k, j) fetches
// pack j into slot k for each of a thread's U packs, then store(k, j) writes each, so every load of a step is
// issued before its first store. Elements past the last whole pack are left to the caller. One element per
// thread (the strided kernels above) reached a quarter of the copy bandwidth on 16-bit tensors.
template <int W, int U, class Load, class Store>
__device__ __forceinline__ void dense_packs(int64_t n, Load load, Store store) {
  const int64_t packs = n / W, threads = blockDim.x;
  for (int64_t base = int64_t{blockIdx.x} * threads * U + threadIdx.x; base < packs;
       base += int64_t{gridDim.x} * threads * U) {
#pragma unroll
    for (int k = 0; k < U; ++k)
      if (base + k * threads < packs) load(k, base + k * threads);
#pragma unroll
    for (int k = 0; k < U; ++k)
      if (base + k * threads < packs) store(k, base + k * threads);
  }
}

// Packs per thread of a packed kernel whose widest element type is that of S or D, with `Inputs` inputs.
template <class S, class D, int Inputs = 1>
constexpr int kPacks = kStreamPacks<std::conditional_t<(sizeof(S) > sizeof(D)), S, D>, Inputs>;

template <class S, class D, int W>
__global__ void copy_packs_kernel(const S* src, D* dst, int64_t n) {
  wait_for_producer();
  Pack<S, W> v[kPacks<S, D>];
  dense_packs<W, kPacks<S, D>>(
      n, [&](int k, int64_t j) { v[k] = load_pack<S, W>(src + j * W); },
      [&](int k, int64_t j) {
        Pack<D, W> o;
#pragma unroll
        for (int e = 0; e < W; ++e) o.v[e] = backend::convert<D>(v[k].v[e]);
        store_pack<D, W>(dst + j * W, o);
      });
  if (blockIdx.x == 0)
    for (int64_t i = n / W * W + threadIdx.x; i < n; i += blockDim.x) dst[i] = backend::convert<D>(src[i]);
}

template <class T, int W>
__global__ void binary_packs_kernel(BinaryOp op, const T* a, const T* b, T* out, int64_t n) {
  Pack<T, W> va[kPacks<T, T, 2>], vb[kPacks<T, T, 2>];
  dense_packs<W, kPacks<T, T, 2>>(
      n,
      [&](int k, int64_t j) {
        va[k] = load_pack<T, W>(a + j * W);
        vb[k] = load_pack<T, W>(b + j * W);
      },
      [&](int k, int64_t j) {
        Pack<T, W> o;
#pragma unroll
        for (int e = 0; e < W; ++e)
          o.v[e] = store<T>(backend::apply_binary(op, load(va[k].v[e]), load(vb[k].v[e])));
        store_pack<T, W>(out + j * W, o);
      });
  if (blockIdx.x == 0)
    for (int64_t i = n / W * W + threadIdx.x; i < n; i += blockDim.x)
      out[i] = store<T>(backend::apply_binary(op, load(a[i]), load(b[i])));
}

// Whether the operands are dense, of one shape and 16-byte aligned: the packed kernels' precondition.
bool dense_same_shape(std::initializer_list<const Tensor*> ts) {
  const Tensor& first = **ts.begin();
  for (const Tensor* t : ts)
    if (!t->is_contiguous() || t->shape() != first.shape() ||
        reinterpret_cast<uintptr_t>(t->data()) % 16 != 0)
      return false;
  return true;
}

// Blocks of kStreamThreads for the packed kernels: one step of `packs` packs of `w` elements per thread, at
// most the grid-stride cap.
unsigned pack_blocks(int64_t n, int w, int packs) {
  const int64_t blocks = (n / w + kStreamThreads * packs - 1) / (kStreamThreads * packs);
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, int64_t{65535} * 32));
}

template <class T>
__global__ void fill_kernel(T* dst, T value, int64_t n, Indexer<1> ix) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    int64_t o[1];
    ix.offsets(i, o);
    dst[o[0]] = value;
  }
}

template <class T>
__global__ void arange_kernel(T* dst, double start, double step, int64_t n, Indexer<1> ix) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    int64_t o[1];
    ix.offsets(i, o);
    dst[o[0]] = store<T>(start + static_cast<double>(i) * step);
  }
}

template <class T>
__global__ void random_kernel(T* dst, backend::Distribution dist, uint64_t seed, double p0, double p1,
                              int64_t n, Indexer<1> ix) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    int64_t o[1];
    ix.offsets(i, o);
    const auto u = static_cast<uint64_t>(i);
    const double r = dist == backend::Distribution::Uniform ? p0 + (p1 - p0) * backend::uniform01(seed, u)
                                                            : p0 + p1 * backend::normal01(seed, u);
    dst[o[0]] = store<T>(r);
  }
}

}  // namespace

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  backend::visit_dense(out.dtype(), "binary", [&](auto tag) {
    using T = decltype(tag);
    if (dense_same_shape({&a, &b, &out})) {
      constexpr int W = kVec<T>;
      binary_packs_kernel<T, W><<<pack_blocks(n, W, kPacks<T, T, 2>), kStreamThreads, 0, stream_of(out)>>>(
          op, a.data_as<T>(), b.data_as<T>(), out.data_as<T>(), n);
      return;
    }
    binary_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, stream_of(out)>>>(
        op, a.data_as<T>(), b.data_as<T>(), out.data_as<T>(), n,
        make_indexer<3>(out.shape(), {&a, &b, &out}));
  });
  MTL_CUDA_CHECK_LAUNCH("binary_kernel");
}

void binary_scalar(BinaryOp op, const Tensor& a, double scalar, bool scalar_first, const Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  backend::visit_dense(out.dtype(), "binary", [&](auto tag) {
    using T = decltype(tag);
    binary_scalar_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, stream_of(out)>>>(
        op, a.data_as<T>(), store<backend::compute_t<T>>(scalar), scalar_first, out.data_as<T>(), n,
        make_indexer<2>(out.shape(), {&a, &out}));
  });
  MTL_CUDA_CHECK_LAUNCH("binary_scalar_kernel");
}

void copy(const Tensor& src, const Tensor& dst) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  // Dense operands of one dtype are the driver's device-to-device copy, the copy bandwidth itself (on an
  // H200, bf16 16384 x 4096 through the packed kernel below ran at 0.94-0.96 of it).
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous() &&
      src.shape() == dst.shape()) {
    MTL_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), static_cast<size_t>(dst.nbytes()),
                                   cudaMemcpyDeviceToDevice, stream_of(dst)));
    return;
  }
  backend::visit_dense(src.dtype(), "copy", [&](auto src_tag) {
    using S = decltype(src_tag);
    backend::visit_dense(dst.dtype(), "copy", [&](auto dst_tag) {
      using D = decltype(dst_tag);
      if (dense_same_shape({&src, &dst})) {
        constexpr int W = 16 / static_cast<int>(std::max(sizeof(S), sizeof(D)));
        launch_dependent(copy_packs_kernel<S, D, W>, pack_blocks(n, W, kPacks<S, D>), kStreamThreads, 0,
                         stream_of(dst), src.data_as<S>(), dst.data_as<D>(), n);
        return;
      }
      launch_dependent(copy_kernel<S, D>, blocks_for(n, kThreads), kThreads, 0, stream_of(dst),
                       src.data_as<S>(), dst.data_as<D>(), n, make_indexer<2>(dst.shape(), {&src, &dst}));
    });
  });
}

void fill(const Tensor& dst, double value) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  backend::visit_dense(dst.dtype(), "fill", [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, stream_of(dst)>>>(
        dst.data_as<T>(), store<T>(value), n, make_indexer<1>(dst.shape(), {&dst}));
  });
  MTL_CUDA_CHECK_LAUNCH("fill_kernel");
}

void arange(const Tensor& dst, double start, double step) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  backend::visit_dense(dst.dtype(), "arange", [&](auto tag) {
    using T = decltype(tag);
    arange_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, stream_of(dst)>>>(
        dst.data_as<T>(), start, step, n, make_indexer<1>(dst.shape(), {&dst}));
  });
  MTL_CUDA_CHECK_LAUNCH("arange_kernel");
}

void random(const Tensor& dst, backend::Distribution dist, uint64_t seed, double p0, double p1) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  backend::visit_dense(dst.dtype(), "random", [&](auto tag) {
    using T = decltype(tag);
    random_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, stream_of(dst)>>>(
        dst.data_as<T>(), dist, seed, p0, p1, n, make_indexer<1>(dst.shape(), {&dst}));
  });
  MTL_CUDA_CHECK_LAUNCH("random_kernel");
}

}  // namespace metallic::cuda
