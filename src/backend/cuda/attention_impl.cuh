// Shared pieces of the CUDA attention kernels: the launch parameters and the launchers each variant
// file provides to the dispatcher in attention.cu.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

namespace metallic::cuda::attn {

/// Pointers and element strides ([batch, head, seq]; the last dimension is dense) of one call.
struct Params {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  const float* mask;       // null when absent; strides below index [B, Hq, Sq, Sk]
  const int* key_lengths;  // null when absent: keys of batch b end at min(sk, key_lengths[b])
  int64_t q_stride[3], k_stride[3], v_stride[3], o_stride[3], m_stride[4];
  int batch, hq, hkv, sq, sk, d, group;
  bool out_f32;      // out holds f32 rather than q's dtype (decode kernel and general kernel only)
  float scale_log2;  // scale * log2(e): softmax runs in base 2
  bool causal;
  int64_t query_offset;
};

/// Keys batch `b` can see: all `sk`, or fewer when the call passed key lengths.
__device__ __forceinline__ int keys_of(const Params& p, int b) {
  return p.key_lengths ? max(0, min(p.sk, p.key_lengths[b])) : p.sk;
}

/// Which element type a launcher runs on.
enum class Kind { F16, BF16 };

/// Fused tensor-core prefill for D = 64 or 128 (all rows 16-byte aligned).
void launch_flash(const Params& p, Kind kind, cudaStream_t stream);

/// Hopper prefill (wgmma, TMA) for D = 64 or 128 without a mask: runs the call and returns true when the
/// build has it, the device is compute capability 9.0 and the tensor-memory accelerator can describe the
/// operands; otherwise returns false and launches nothing.
bool launch_flash_sm90(const Params& p, Kind kind, cudaStream_t stream);

/// How a decode call splits the keys: chunk c covers keys [c * chunk_len, min(keys, (c + 1) * chunk_len)).
/// Chunks past the batch's key length do nothing. With `cluster` the chunks of a tile merge in shared
/// memory; otherwise, with more than one chunk in use, each writes its max and sum (part_ml, [B, Hq, Sq,
/// n_chunks, 2]) and unnormalised output (part_acc, [B, Hq, Sq, n_chunks, D]) and bumps its tile's counter
/// ([B, Hkv * row_groups], zero between calls); the chunk that brings it to the number in use merges them
/// and resets it.
struct DecodeSplit {
  int row_groups;  // 16-row tiles per kv head
  int n_chunks;
  int64_t keys, chunk_len;
  float* part_acc;
  float* part_ml;
  int* counters;
  bool tma;      // K and V tiles arrive by tensor map (set by launch_flash_decode)
  bool cluster;  // the chunks of a tile form one cluster and merge in shared memory (no partials, counters)
};

/// The most chunks a decode call splits into: the merge keeps two floats per chunk and row in the shared
/// memory of the K/V ring.
constexpr int kDecodeMaxChunks = 256;

/// The most chunks of a tile that can merge as one cluster (1 where clusters are unavailable).
int decode_cluster_limit(Kind kind, int d);

/// Split-K tensor-core decode for D = 64 or 128 (all rows 16-byte aligned).
void launch_flash_decode(const Params& p, const DecodeSplit& split, Kind kind, cudaStream_t stream);

/// log2(e), to move an additive natural-log mask into the base-2 domain.
constexpr float kLog2e = 1.4426950408889634f;

/// Two floats rounded to T (f16 or bf16) and packed in one register, low element first: the operand
/// layout of the tensor-core instructions.
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

/// The sum of `v` over the four lanes of a quad: the threads that hold one row of an mma tile.
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

}  // namespace metallic::cuda::attn
