// Reference attention: for each (batch, q head, query) the scores against every key in f32, a
// max-subtracted softmax, then the weighted sum of the value rows.
#include "backend/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/scalar.h"

namespace metallic::cpu {
namespace {

template <class T>
void attention_typed(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                     const Tensor& key_lengths, float scale, bool causal, int64_t query_offset,
                     const Tensor& out) {
  using backend::load;
  const int64_t batch = q.dim(0), hq = q.dim(1), sq = q.dim(2), d = q.dim(3);
  const int64_t hkv = k.dim(1), sk = k.dim(2), group = hq / hkv;
  const T* qp = q.data_as<T>();
  const T* kp = k.data_as<T>();
  const T* vp = v.data_as<T>();
  const float* mp = mask.defined() ? mask.data_as<float>() : nullptr;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  std::vector<float> scores(static_cast<size_t>(sk)), acc(static_cast<size_t>(d));

  for (int64_t b = 0; b < batch; ++b) {
    const int64_t keys =
        key_lengths.defined() ? std::clamp<int64_t>(key_lengths.data_as<int32_t>()[b], 0, sk) : sk;
    for (int64_t h = 0; h < hq; ++h) {
      const int64_t kvh = h / group;
      const T* kh = kp + b * k.stride(0) + kvh * k.stride(1);
      const T* vh = vp + b * v.stride(0) + kvh * v.stride(1);
      for (int64_t i = 0; i < sq; ++i) {
        const T* qi = qp + b * q.stride(0) + h * q.stride(1) + i * q.stride(2);
        float row_max = neg_inf;
        for (int64_t j = 0; j < sk; ++j) {
          float s = neg_inf;
          if (j < keys && (!causal || j <= i + query_offset)) {
            const T* kj = kh + j * k.stride(2);
            float dot = 0.0f;
            for (int64_t c = 0; c < d; ++c) dot += load(qi[c]) * load(kj[c]);
            s = dot * scale;
            if (mp)
              s += mp[b * mask.stride(0) + h * mask.stride(1) + i * mask.stride(2) + j * mask.stride(3)];
          }
          scores[static_cast<size_t>(j)] = s;
          row_max = std::max(row_max, s);
        }
        std::fill(acc.begin(), acc.end(), 0.0f);
        float sum = 0.0f;
        // A row whose every score is -inf has no keys to attend to: it stays zero instead of 0/0.
        if (row_max != neg_inf) {
          for (int64_t j = 0; j < sk; ++j) {
            const float p = std::exp(scores[static_cast<size_t>(j)] - row_max);
            sum += p;
            const T* vj = vh + j * v.stride(2);
            for (int64_t c = 0; c < d; ++c) acc[static_cast<size_t>(c)] += p * load(vj[c]);
          }
        }
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        const int64_t oi = b * out.stride(0) + h * out.stride(1) + i * out.stride(2);
        for (int64_t c = 0; c < d; ++c) {
          const float value = acc[static_cast<size_t>(c)] * inv;
          if (out.dtype() == DType::F32)
            out.data_as<float>()[oi + c] = value;
          else
            out.data_as<T>()[oi + c] = backend::store<T>(value);
        }
      }
    }
  }
}

}  // namespace

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
               const Tensor& key_lengths, float scale, bool causal, int64_t query_offset, const Tensor& out) {
  backend::visit_dense(q.dtype(), "sdpa", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, f16> || std::is_same_v<T, bf16>)
      attention_typed<T>(q, k, v, mask, key_lengths, scale, causal, query_offset, out);
    else
      fail(ErrorCode::NotSupported, "sdpa: dtype ", name(q.dtype()), " is not supported");
  });
}

}  // namespace metallic::cpu
