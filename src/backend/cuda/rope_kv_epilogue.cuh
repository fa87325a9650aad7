// The epilogue of the fused q/k/v projection (fused_linear_rope_kv): the GEMV's rows are the stacked q, k
// and v heads, taken so that a block of R rows holds R / 2 rotation pairs of one head (its first R / 2 rows
// the pairs' first elements, the rest their partners). Each pair is then rotated at its token's position and
// stored into q_out or the caches in one step, with no pass over a q/k/v buffer in between.
#pragma once

#include <cstdint>

#include "backend/cuda/rope_angles.cuh"
#include "backend/scalar.h"
#include "metallic/ops/fused_linear.h"

namespace metallic::cuda {

struct RopeKvEpilogue {
  const int32_t* positions;  // [seq]: x row m is token m % seq of sequence m / seq
  int seq, hq, hkv, d, capacity;
  bool neox;
  RopeFrequencies freq;
  void* q_out;
  void* k_cache;
  void* v_cache;
  DType out_type;               // of q_out and the caches: f32, f16 or bf16
  int64_t qs[3], ks[3], vs[3];  // element strides (batch, token or cache row, head)

  /// Pair index within its head of local row r of `block` (R rows per block).
  __device__ __forceinline__ int pair(int block, int r, int R) const {
    return block % (d / R) * (R / 2) + r % (R / 2);
  }
  /// The stacked-weight row that local row r of `block` reads.
  __device__ __forceinline__ int row(int block, int r, int R) const {
    const int i = pair(block, r, R), second = r >= R / 2;
    return block / (d / R) * d + (neox ? i + second * (d / 2) : 2 * i + second);
  }

  /// Rotates (q and k) and stores pair i of stacked head `head` for x row m: `a` and `b` are the pair's two
  /// elements of the product, inv_freq the pair's frequency.
  __device__ __forceinline__ void store(int m, int head, int i, float a, float b, double inv_freq) const {
    const int s = m % seq, batch = m / seq, pos = positions[s];
    void* base = q_out;
    int64_t at = batch * qs[0] + s * qs[1] + head * qs[2];
    if (head >= hq) {  // k or v: a cache row, when the position lies in the cache
      if (pos < 0 || pos >= capacity) return;
      const bool key = head < hq + hkv;
      const int64_t* st = key ? ks : vs;
      base = key ? k_cache : v_cache;
      at = batch * st[0] + static_cast<int64_t>(pos) * st[1] + (head - hq - (key ? 0 : hkv)) * st[2];
    }
    if (head < hq + hkv) {
      float sn, c;
      rope_sincos(pos, inv_freq, &sn, &c);
      const float ra = a * c - b * sn, rb = a * sn + b * c;
      a = ra, b = rb;
    }
    at += neox ? i : 2 * i;
    const int64_t partner = neox ? d / 2 : 1;
    put(base, at, a);
    put(base, at + partner, b);
  }

 private:
  __device__ __forceinline__ void put(void* base, int64_t at, float v) const {
    switch (out_type) {
      case DType::F16: static_cast<f16*>(base)[at] = backend::store<f16>(v); break;
      case DType::BF16: static_cast<bf16*>(base)[at] = backend::store<bf16>(v); break;
      default: static_cast<float*>(base)[at] = v; break;
    }
  }
};

/// The epilogue for fused_linear_rope_kv's targets (rope resolved) and x rows of `seq` tokens.
inline RopeKvEpilogue rope_kv_epilogue(const RopeKvTargets& t) {
  RopeKvEpilogue e{};
  e.positions = t.positions.data_as<int32_t>();
  e.seq = static_cast<int>(t.q_out.dim(1));
  e.hq = static_cast<int>(t.q_out.dim(2));
  e.hkv = static_cast<int>(t.k_cache.dim(2));
  e.d = static_cast<int>(t.q_out.dim(3));
  e.capacity = static_cast<int>(t.k_cache.dim(1));
  e.neox = t.rope.style == RopeStyle::Neox;
  e.freq = rope_frequencies(t.rope);
  e.q_out = t.q_out.data();
  e.k_cache = t.k_cache.data();
  e.v_cache = t.v_cache.data();
  e.out_type = t.q_out.dtype();
  for (int dim = 0; dim < 3; ++dim) {
    e.qs[dim] = t.q_out.stride(dim);
    e.ks[dim] = t.k_cache.stride(dim);
    e.vs[dim] = t.v_cache.stride(dim);
  }
  return e;
}

}  // namespace metallic::cuda
