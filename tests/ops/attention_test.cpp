#include "metallic/ops/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "metallic/ops/copy.h"
#include "test_support.h"

namespace metallic {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

enum class MaskKind {
  None,
  Full,       // f32 [B, Hq, Sq, Sk] with scattered -inf
  Broadcast,  // q's dtype [Sq, Sk] with scattered -inf and query row 0 fully masked
};

struct Spec {
  int64_t b = 1, hq = 1, hkv = 1, sq = 1, sk = 1, d = 64;
  bool causal = false;
  int64_t offset = 0;
  MaskKind mask = MaskKind::None;
  bool seq_major = false;  // q, k, v and out are permute({0, 2, 1, 3}) views of [B, S, H, D] tensors
  int64_t cache = 0;       // k and v are the first sk positions of a cache this long (0: exactly sk)
  bool padded = false;     // every operand is a narrow of a wider last dimension (unaligned rows)
  float scale = 0.0f;
  std::vector<int32_t> lengths;  // key_lengths per batch (empty: none)
  bool f32_out = false;          // out in f32 whatever q's dtype

  std::string describe() const {
    std::ostringstream os;
    os << "B" << b << " Hq" << hq << " Hkv" << hkv << " Sq" << sq << " Sk" << sk << " D" << d;
    if (causal) os << " causal+" << offset;
    if (mask != MaskKind::None) os << " mask";
    if (seq_major) os << " seq-major";
    if (cache) os << " cache" << cache;
    if (padded) os << " padded";
    if (f32_out) os << " f32-out";
    for (int32_t n : lengths) os << " len" << n;
    return os.str();
  }
};

double tolerance(DType dtype) {
  switch (dtype) {
    case DType::BF16: return 2e-2;
    case DType::F16: return 2e-3;
    default: return 1e-5;
  }
}

class Attention : public test::BackendTest {
 protected:
  // A [B, H, S, D] operand in `dtype` laid out as the spec says, filled from `values` (row-major over
  // [B, H, S, D]). Positions past S (a cache's unused tail) and padding hold NaN, which must never be read.
  Tensor operand(const Spec& s, int64_t heads, int64_t seq, int64_t alloc_seq, DType dtype,
                 const std::vector<float>& values) {
    const int64_t width = s.d + (s.padded ? 3 : 0);
    const Shape shape =
        s.seq_major ? Shape{s.b, alloc_seq, heads, width} : Shape{s.b, heads, alloc_seq, width};
    std::vector<float> host(static_cast<size_t>(shape.numel()), NAN);
    Tensor t = cast(Tensor::from_vector(ctx, host, shape), dtype).narrow(3, s.padded ? 1 : 0, s.d);
    if (s.seq_major) t = t.permute({0, 2, 1, 3});
    t = t.narrow(2, 0, seq);
    if (!values.empty()) copy(Tensor::from_vector(ctx, values, Shape{s.b, heads, seq, s.d}), t);
    return t;
  }

  // Runs the spec in `dtype` against a double-precision reference computed from the rounded inputs.
  void run(const Spec& s, DType dtype) {
    SCOPED_TRACE(s.describe() + " " + std::string(name(dtype)));
    static uint32_t seed = 1;
    const auto qv = test::random_floats(static_cast<size_t>(s.b * s.hq * s.sq * s.d), ++seed);
    const auto kv = test::random_floats(static_cast<size_t>(s.b * s.hkv * s.sk * s.d), ++seed);
    const auto vv = test::random_floats(static_cast<size_t>(s.b * s.hkv * s.sk * s.d), ++seed);
    const int64_t alloc = s.cache ? s.cache : s.sk;
    const Tensor q = operand(s, s.hq, s.sq, s.sq, dtype, qv);
    const Tensor k = operand(s, s.hkv, s.sk, alloc, dtype, kv);
    const Tensor v = operand(s, s.hkv, s.sk, alloc, dtype, vv);
    const Tensor out = operand(s, s.hq, s.sq, s.sq, s.f32_out ? DType::F32 : dtype, {});

    AttentionOptions opt;
    opt.scale = s.scale;
    opt.causal = s.causal;
    opt.query_offset = s.offset;
    if (!s.lengths.empty()) opt.key_lengths = Tensor::from_vector(ctx, s.lengths, {s.b});
    Shape mask_shape;
    if (s.mask == MaskKind::Full) {
      mask_shape = Shape{s.b, s.hq, s.sq, s.sk};
      auto m = test::random_floats(static_cast<size_t>(mask_shape.numel()), ++seed, -2.f, 2.f);
      for (size_t i = 0; i < m.size(); i += 7) m[i] = -kInf;
      opt.mask = Tensor::from_vector(ctx, m, mask_shape);
    } else if (s.mask == MaskKind::Broadcast) {
      mask_shape = Shape{s.sq, s.sk};
      auto m = test::random_floats(static_cast<size_t>(mask_shape.numel()), ++seed, -2.f, 2.f);
      for (size_t i = 0; i < m.size(); i += 5) m[i] = -kInf;
      for (int64_t j = 0; j < s.sk; ++j) m[static_cast<size_t>(j)] = -kInf;
      opt.mask = cast(Tensor::from_vector(ctx, m, mask_shape), dtype);
    }
    scaled_dot_product_attention(q, k, v, opt, out);

    // The reference reads the inputs as stored in `dtype`.
    const auto qs = q.to_vector<float>(), ks = k.to_vector<float>(), vs = v.to_vector<float>();
    const std::vector<float> ms = opt.mask.defined() ? opt.mask.to_vector<float>() : std::vector<float>{};
    const double scale = s.scale != 0.0f ? s.scale : 1.0 / std::sqrt(static_cast<double>(s.d));
    std::vector<double> want(static_cast<size_t>(s.b * s.hq * s.sq * s.d), 0.0);
    std::vector<double> scores(static_cast<size_t>(s.sk));
    for (int64_t b = 0; b < s.b; ++b)
      for (int64_t h = 0; h < s.hq; ++h)
        for (int64_t i = 0; i < s.sq; ++i) {
          const int64_t kvh = h / (s.hq / s.hkv);
          double mx = -INFINITY;
          for (int64_t j = 0; j < s.sk; ++j) {
            double dot = 0;
            for (int64_t c = 0; c < s.d; ++c)
              dot += static_cast<double>(qs[static_cast<size_t>(((b * s.hq + h) * s.sq + i) * s.d + c)]) *
                     ks[static_cast<size_t>(((b * s.hkv + kvh) * s.sk + j) * s.d + c)];
            double sc = dot * scale;
            if (s.mask == MaskKind::Full)
              sc += ms[static_cast<size_t>(((b * s.hq + h) * s.sq + i) * s.sk + j)];
            if (s.mask == MaskKind::Broadcast) sc += ms[static_cast<size_t>(i * s.sk + j)];
            if (s.causal && j > i + s.offset) sc = -INFINITY;
            if (!s.lengths.empty() && j >= s.lengths[static_cast<size_t>(b)]) sc = -INFINITY;
            scores[static_cast<size_t>(j)] = sc;
            mx = std::max(mx, sc);
          }
          if (mx == -INFINITY) continue;  // fully masked: zeros
          double sum = 0;
          for (double& sc : scores) sum += (sc = std::exp(sc - mx));
          for (int64_t j = 0; j < s.sk; ++j)
            for (int64_t c = 0; c < s.d; ++c)
              want[static_cast<size_t>(((b * s.hq + h) * s.sq + i) * s.d + c)] +=
                  scores[static_cast<size_t>(j)] / sum *
                  vs[static_cast<size_t>(((b * s.hkv + kvh) * s.sk + j) * s.d + c)];
        }
    const double err = test::max_rel_error(out.to_vector<float>(), want);
    EXPECT_TRUE(err <= tolerance(dtype)) << "max rel error " << err;
  }

  void run_all_dtypes(const Spec& s) {
    for (DType dtype : {DType::F32, DType::F16, DType::BF16}) run(s, dtype);
  }
};

TEST_P(Attention, SingleQueryAndSmallShapes) {
  run_all_dtypes({.sq = 1, .sk = 1, .d = 64});
  run_all_dtypes({.b = 2, .hq = 3, .hkv = 3, .sq = 3, .sk = 5, .d = 16});
  run_all_dtypes({.hq = 2, .hkv = 1, .sq = 1, .sk = 257, .d = 128});
}

TEST_P(Attention, PrefillTilesAndOddLengths) {
  // Sq and Sk not multiples of any tile; D 64 and 128 take the tensor-core path on the GPU.
  run_all_dtypes({.b = 2, .hq = 2, .hkv = 2, .sq = 70, .sk = 257, .d = 64});
  run_all_dtypes({.hq = 2, .hkv = 1, .sq = 130, .sk = 130, .d = 128});
  run_all_dtypes({.hq = 2, .hkv = 2, .sq = 33, .sk = 47, .d = 16});
}

TEST_P(Attention, CausalPrefillAndChunkedPrefill) {
  run_all_dtypes({.hq = 4, .hkv = 2, .sq = 200, .sk = 200, .d = 128, .causal = true});
  run_all_dtypes({.b = 2, .hq = 2, .hkv = 1, .sq = 67, .sk = 67, .d = 64, .causal = true});
  // Chunked prefill: the last Sq of Sk positions.
  run_all_dtypes({.hq = 2, .hkv = 2, .sq = 5, .sk = 257, .d = 64, .causal = true, .offset = 252});
  run_all_dtypes({.hq = 2, .hkv = 1, .sq = 40, .sk = 300, .d = 128, .causal = true, .offset = 260});
  // Offsets that leave early rows with nothing to see.
  run_all_dtypes({.hq = 1, .hkv = 1, .sq = 20, .sk = 20, .d = 64, .causal = true, .offset = -3});
}

TEST_P(Attention, PrefillAcrossManyTiles) {
  // Several 128-row query blocks and 128-key tiles, each with a partial last one, in both head sizes.
  run_all_dtypes({.b = 2, .hq = 4, .hkv = 2, .sq = 300, .sk = 300, .d = 128});
  run_all_dtypes({.hq = 4, .hkv = 1, .sq = 257, .sk = 257, .d = 64, .causal = true});
  run_all_dtypes({.hq = 3, .hkv = 3, .sq = 129, .sk = 520, .d = 128, .causal = true, .offset = 391});
  run_all_dtypes({.b = 2, .hq = 4, .hkv = 2, .sq = 200, .sk = 333, .d = 64, .seq_major = true, .cache = 400});
  run_all_dtypes({.b = 2, .hq = 2, .hkv = 1, .sq = 150, .sk = 400, .d = 128, .lengths = {390, 0}});
  run_all_dtypes({.hq = 2, .hkv = 1, .sq = 260, .sk = 260, .d = 128, .causal = true, .offset = -130});
}

TEST_P(Attention, DecodeAgainstLongCache) {
  for (int64_t d : {64, 128}) {
    run_all_dtypes({.b = 2,
                    .hq = 8,
                    .hkv = 2,
                    .sq = 1,
                    .sk = 1000,
                    .d = d,
                    .causal = true,
                    .offset = 999,
                    .seq_major = true,
                    .cache = 1100});
    run_all_dtypes({.hq = 4, .hkv = 4, .sq = 1, .sk = 3001, .d = d, .cache = 4096});
    // Many heads: few chunks of many tiles each, which take the deep K/V ring on the GPU.
    run_all_dtypes(
        {.b = 8, .hq = 16, .hkv = 8, .sq = 1, .sk = 2047, .d = d, .seq_major = true, .cache = 2100});
  }
  run_all_dtypes(
      {.hq = 8, .hkv = 2, .sq = 5, .sk = 2049, .d = 128, .causal = true, .offset = 2044, .cache = 2100});
  run_all_dtypes({.hq = 4, .hkv = 1, .sq = 8, .sk = 777, .d = 64, .causal = true, .offset = 769});
}

TEST_P(Attention, GroupedQueryRatios) {
  for (int64_t ratio : {1, 2, 4, 7}) {
    run_all_dtypes({.b = 1, .hq = 2 * ratio, .hkv = 2, .sq = 1, .sk = 257, .d = 128});
    run_all_dtypes(
        {.b = 1, .hq = ratio, .hkv = 1, .sq = 3, .sk = 300, .d = 64, .causal = true, .offset = 297});
    run_all_dtypes({.b = 1, .hq = ratio, .hkv = 1, .sq = 65, .sk = 65, .d = 64, .causal = true});
  }
}

TEST_P(Attention, AdditiveMasks) {
  run_all_dtypes({.b = 2, .hq = 2, .hkv = 1, .sq = 70, .sk = 90, .d = 64, .mask = MaskKind::Full});
  run_all_dtypes({.hq = 2,
                  .hkv = 2,
                  .sq = 66,
                  .sk = 257,
                  .d = 128,
                  .causal = true,
                  .offset = 191,
                  .mask = MaskKind::Broadcast});
  run_all_dtypes({.hq = 4, .hkv = 2, .sq = 2, .sk = 600, .d = 128, .mask = MaskKind::Broadcast});
  run_all_dtypes({.hq = 4, .hkv = 2, .sq = 1, .sk = 600, .d = 64, .mask = MaskKind::Full});
  run_all_dtypes({.hq = 3, .hkv = 1, .sq = 9, .sk = 31, .d = 16, .mask = MaskKind::Broadcast});
}

TEST_P(Attention, StridedViewsAndScale) {
  run_all_dtypes(
      {.b = 2, .hq = 4, .hkv = 2, .sq = 77, .sk = 77, .d = 128, .causal = true, .seq_major = true});
  run_all_dtypes({.b = 2, .hq = 4, .hkv = 2, .sq = 20, .sk = 100, .d = 64, .seq_major = true, .cache = 160});
  // Unaligned rows force the general kernel on the GPU.
  run_all_dtypes({.hq = 2, .hkv = 1, .sq = 70, .sk = 90, .d = 64, .padded = true});
  run_all_dtypes({.hq = 2, .hkv = 1, .sq = 1, .sk = 500, .d = 128, .padded = true});
  run_all_dtypes({.hq = 2, .hkv = 2, .sq = 17, .sk = 33, .d = 64, .scale = 0.3f});
}

TEST_P(Attention, WideHeads) {
  run_all_dtypes({.hq = 2, .hkv = 1, .sq = 19, .sk = 40, .d = 256, .causal = true});
  run_all_dtypes({.hq = 2, .hkv = 1, .sq = 1, .sk = 40, .d = 96});
}

TEST_P(Attention, KeyLengthsCutTheKeysPerBatch) {
  // The keys past each length hold real values that must be ignored.
  for (int64_t d : {64, 128})
    run_all_dtypes(
        {.b = 2, .hq = 8, .hkv = 2, .sq = 1, .sk = 1100, .d = d, .seq_major = true, .lengths = {700, 1150}});
  run_all_dtypes(
      {.b = 2, .hq = 7, .hkv = 1, .sq = 1, .sk = 4096, .d = 128, .seq_major = true, .lengths = {1, 0}});
  run_all_dtypes(
      {.hq = 2, .hkv = 1, .sq = 40, .sk = 300, .d = 64, .causal = true, .offset = 260, .lengths = {280}});
  run_all_dtypes({.b = 2, .hq = 2, .hkv = 2, .sq = 3, .sk = 50, .d = 16, .lengths = {0, 17}});
}

TEST_P(Attention, FewChunksInUseCoverEveryHead) {
  // A long cache split into many chunks of which only the first few hold keys: those few must produce the
  // outputs of every query head (eight here, more than the chunks in use).
  for (int64_t d : {64, 128})
    for (int32_t len : {65, 150, 200, 520})
      run_all_dtypes({.hq = 8, .hkv = 1, .sq = 1, .sk = 1024, .d = d, .seq_major = true, .lengths = {len}});
  run_all_dtypes(
      {.b = 2, .hq = 14, .hkv = 2, .sq = 1, .sk = 640, .d = 64, .seq_major = true, .lengths = {100, 300}});
}

TEST_P(Attention, F32OutputFromHalfInputs) {
  for (int64_t sq : {1, 5, 70})
    run_all_dtypes({.b = 2,
                    .hq = 4,
                    .hkv = 2,
                    .sq = sq,
                    .sk = 300,
                    .d = 128,
                    .causal = true,
                    .offset = 300 - sq,
                    .seq_major = true,
                    .cache = 320,
                    .f32_out = true});
  run_all_dtypes({.hq = 2, .hkv = 1, .sq = 3, .sk = 40, .d = 16, .f32_out = true});
}

TEST_P(Attention, AllocatingFormIsContiguous) {
  const Tensor q = Tensor::from_vector(ctx, test::random_floats(2 * 4 * 8, 7), Shape{1, 2, 4, 8});
  const Tensor kv = Tensor::from_vector(ctx, test::random_floats(2 * 5 * 8, 8), Shape{1, 2, 5, 8});
  const Tensor out = scaled_dot_product_attention(q, kv, kv);
  EXPECT_EQ(out.shape(), (Shape{1, 2, 4, 8}));
  EXPECT_TRUE(out.is_contiguous());
}

TEST_P(Attention, RejectsBadArguments) {
  const auto make = [&](const Shape& shape, DType dtype = DType::F32) {
    return cast(Tensor::from_vector(ctx, test::random_floats(static_cast<size_t>(shape.numel()), 3), shape),
                dtype);
  };
  const Tensor q = make({1, 6, 4, 8}), k = make({1, 4, 5, 8}), v = make({1, 4, 5, 8});
  EXPECT_METALLIC_ERROR(scaled_dot_product_attention(q, k, v), ErrorCode::ShapeMismatch);
  const Tensor k2 = make({1, 2, 5, 8}), v2 = make({1, 2, 5, 8});
  EXPECT_METALLIC_ERROR(scaled_dot_product_attention(q, k2, make({1, 2, 6, 8})), ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(scaled_dot_product_attention(q, make({1, 2, 5, 8}, DType::F16), v2),
                        ErrorCode::DTypeMismatch);
  EXPECT_METALLIC_ERROR(
      scaled_dot_product_attention(q.transpose(2, 3), make({1, 2, 5, 4}), make({1, 2, 5, 4})),
      ErrorCode::InvalidArgument);
  EXPECT_METALLIC_ERROR(scaled_dot_product_attention(make({6, 4, 8}), k2, v2), ErrorCode::InvalidArgument);
  AttentionOptions opt;
  opt.mask = make({4, 5}, DType::F16);
  EXPECT_METALLIC_ERROR(scaled_dot_product_attention(q, k2, v2, opt), ErrorCode::DTypeMismatch);
  opt.mask = make({3, 5});
  EXPECT_METALLIC_ERROR(scaled_dot_product_attention(q, k2, v2, opt), ErrorCode::ShapeMismatch);
  opt.mask = {};
  opt.key_lengths = Tensor::from_vector(ctx, std::vector<int64_t>{5}, {1});
  EXPECT_METALLIC_ERROR(scaled_dot_product_attention(q, k2, v2, opt), ErrorCode::DTypeMismatch);
  opt.key_lengths = Tensor::from_vector(ctx, std::vector<int32_t>{5, 5}, {2});
  EXPECT_METALLIC_ERROR(scaled_dot_product_attention(q, k2, v2, opt), ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(
      scaled_dot_product_attention(make({1, 6, 4, 8}, DType::I32), make({1, 2, 5, 8}, DType::I32),
                                   make({1, 2, 5, 8}, DType::I32)),
      ErrorCode::NotSupported);
}

INSTANTIATE_TEST_SUITE_P(Cpu, Attention, ::testing::Values(Device::cpu()));
INSTANTIATE_TEST_SUITE_P(Cuda, Attention, ::testing::Values(Device::cuda()));

}  // namespace
}  // namespace metallic
