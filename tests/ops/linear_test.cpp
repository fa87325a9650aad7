#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "metallic/model/quant.h"
#include "metallic/ops/copy.h"
#include "metallic/ops/embedding.h"
#include "metallic/ops/group_blocks.h"
#include "metallic/ops/matmul.h"
#include "metallic/ops/norms.h"
#include "test_support.h"

namespace metallic {
namespace {

// A [rows, cols] weight of `type` on `ctx` built by quantizing seeded floats on the CPU, starting `lead`
// bytes into its buffer; `deq` receives the de-quantized values the reference uses.
Tensor make_weight(const std::shared_ptr<Context>& ctx, DType type, int64_t rows, int64_t cols, uint32_t seed,
                   std::vector<float>& deq, int64_t lead = 0) {
  const auto v = test::random_floats(static_cast<size_t>(rows * cols), seed);
  const int64_t bytes = storage_bytes(type, rows * cols);
  std::vector<uint8_t> raw(static_cast<size_t>(lead + bytes), 0xff);
  quant::quantize(type, v.data(), raw.data() + lead, rows * cols);
  deq.resize(v.size());
  quant::dequantize(type, raw.data() + lead, deq.data(), rows * cols);
  Tensor u8 = Tensor::from_vector<uint8_t>(ctx, raw, {lead + bytes});
  return Tensor(u8.buffer(), u8.offset() + lead, {rows, cols}, {cols, 1}, type);
}

template <class X>
std::vector<double> reference(const std::vector<X>& x, int64_t m, int64_t k, const std::vector<float>& w,
                              int64_t n, const std::vector<float>* bias) {
  std::vector<double> y(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = bias ? (*bias)[static_cast<size_t>(j)] : 0.0;
      for (int64_t p = 0; p < k; ++p)
        s += static_cast<double>(x[static_cast<size_t>(i * k + p)]) * w[static_cast<size_t>(j * k + p)];
      y[static_cast<size_t>(i * n + j)] = s;
    }
  return y;
}

// x rounded to 8 bits in blocks of 32 as the CUDA GEMV for block-quantized weights does it (an independent
// f32 computation): scale d = max|x| / 127, quants round-half-even(x * (1 / d)); returns d * q in double.
std::vector<double> quantize_x8(const std::vector<float>& x) {
  std::vector<double> out(x.size());
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0.f;
    for (size_t i = b; i < b + 32; ++i) amax = std::max(amax, std::abs(x[i]));
    const float d = amax / 127.f, id = d != 0.f ? 1.f / d : 0.f;
    for (size_t i = b; i < b + 32; ++i) out[i] = static_cast<double>(d) * std::nearbyint(x[i] * id);
  }
  return out;
}

double relative_l2(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return got.size() == want.size() ? std::sqrt(num / den) : NAN;
}

struct Param {
  Device device;
  DType weight;
  DType x;
};

class Linear : public test::DeviceTest<Param> {
 protected:
  // With `offset`, W starts off its natural alignment (2 bytes for GGUF block types, one element for dense
  // ones, 16 bytes for the grouped types, whose groups are 16-byte multiples) and x one element into its
  // buffer; otherwise W starts `weight_lead` bytes into its buffer.
  void run_case(int64_t m, int64_t k, int64_t n, bool with_bias, uint32_t seed, bool offset = false,
                int64_t weight_lead = 0) {
    const auto [dev, wt, xt] = GetParam();
    std::vector<float> wdeq;
    const bool grouped = wt == DType::Q4_0X8 || wt == DType::Q8_0X8;
    const int64_t lead = offset ? (grouped ? 16 : is_quantized(wt) ? 2 : element_size(wt)) : weight_lead;
    Tensor w = make_weight(ctx, wt, n, k, seed, wdeq, lead);
    const int64_t xlead = offset ? 1 : 0;
    auto xv = test::random_floats(static_cast<size_t>(xlead + m * k), seed + 1);
    Tensor xbuf = cast(Tensor::from_vector<float>(ctx, xv, {xlead + m * k}), xt);
    Tensor x(xbuf.buffer(), xbuf.offset() + xlead * element_size(xt), {m, k}, {k, 1}, xt);
    xv = x.to_vector<float>();  // the rounded values the kernel sees
    std::vector<float> bv = test::random_floats(static_cast<size_t>(n), seed + 2);
    Tensor b = with_bias ? Tensor::from_vector<float>(ctx, bv, {n}) : Tensor();
    Tensor y = linear(x, w, b);
    ASSERT_EQ(y.shape(), (Shape{m, n}));
    expect_close(y.to_vector<float>(), xv, wdeq, m, k, n, with_bias ? &bv : nullptr);
  }

  // Checks y = x W^T (+ bias) for this case's types against a double-precision reference built from the
  // values x and W hold (`xv`, `wdeq`).
  void expect_close(const std::vector<float>& got, const std::vector<float>& xv,
                    const std::vector<float>& wdeq, int64_t m, int64_t k, int64_t n,
                    const std::vector<float>* bias) {
    const auto [dev, wt, xt] = GetParam();
    const auto want = reference(xv, m, k, wdeq, n, bias);
    if (dev.is_cuda() && m <= 8 && is_quantized(wt)) {
      // The CUDA GEMV rounds x to 8 bits per block of 32 first. Against x rounded the same way only f32
      // sums remain, plus one rounding to x's dtype (half an ulp: 2^-11 for f16, 2^-8 for bf16).
      const auto want_q = reference(quantize_x8(xv), m, k, wdeq, n, bias);
      const double round = xt == DType::BF16 ? 3.9e-3 : xt == DType::F16 ? 4.9e-4 : 0.0;
      const double sums = 1e-5 * std::max(1.0, static_cast<double>(k) / 4096);  // f32 sums grow with K
      EXPECT_LE(test::max_rel_error(got, want_q, 1.0), sums + round)
          << "m=" << m << " k=" << k << " n=" << n << " weight " << name(wt) << " (x rounded to 8 bits)";
      // Against exact x: each quant is off by at most d / 2 = max|x| / 254, uniformly, i.e. an rms of
      // max|x| / 440 against the rms max|x| / sqrt(3) of these uniform x, so the outputs carry a relative
      // L2 error near 4e-3 (plus the output rounding); 1.5e-2 leaves room for few-output cases.
      EXPECT_LE(relative_l2(got, want), 1.5e-2)
          << "m=" << m << " k=" << k << " n=" << n << " weight " << name(wt) << " (exact x)";
      return;
    }
    // Only accumulation error (and one rounding to x's dtype; large-M tiles also round W to x's dtype).
    // Above 8 rows of x on CUDA, W is rounded to x's dtype in the scratch tile: bf16 keeps 8 bits, so K=512
    // products of such weights can be off by a few percent of the floor.
    // f32 x against non-f32 W above 8 rows runs the CUDA GEMM in f16: x, W and the result are rounded to f16
    // (observed up to 6.8e-3 of the floor at K=512).
    const bool f16_gemm = dev.is_cuda() && xt == DType::F32 && wt != DType::F32 && m > 8;
    const double t = xt == DType::BF16  ? (m > 8 ? 6e-2 : 3e-2)
                     : f16_gemm         ? 1e-2
                     : xt == DType::F16 ? 5e-3
                                        : 1e-4;
    EXPECT_LE(test::max_rel_error(got, want, 1.0), t)
        << "m=" << m << " k=" << k << " n=" << n << " weight " << name(wt);
  }
};

TEST_P(Linear, Gemv) {
  const int64_t k = info(GetParam().weight).block_size == 256 ? 512 : 256;
  run_case(1, k, 3, true, 1);
  run_case(1, k, 257, false, 2);
  run_case(2, k, 9, false, 9);
  run_case(3, k, 67, true, 3);
  run_case(8, 2 * k, 40, true, 4);
}

TEST_P(Linear, GemvOddBlocksAndOffsets) {
  // An odd number of blocks per row (rows not 16-byte multiples, a tile and a two-block unit cut short),
  // then W and x views off their natural alignment.
  const int64_t k = info(GetParam().weight).block_size == 256 ? 768 : 160;
  run_case(1, k, 5, true, 10);
  run_case(4, k, 33, false, 11);
  run_case(1, k, 19, false, 12, true);
  run_case(6, k, 7, true, 13, true);
  run_case(1, 2 * k, 130, true, 14, true);
}

TEST_P(Linear, GemvRowGroups) {
  // K a multiple of 256: quantized rows of whole 16-byte vectors take the 32-rows-per-block path, whose
  // warps split the row's 256-element units (more units than warps, then fewer). N is not a multiple of
  // 32, and the last case's W starts 64 bytes into its buffer (still 16-byte aligned).
  run_case(1, 256 * 11, 70, true, 20);
  run_case(3, 256 * 11, 33, false, 21);
  run_case(7, 256 * 3, 100, true, 22);
  run_case(2, 256 * 20, 64, false, 23, false, 64);
  // More than 1024 rows of W against one row of x stream through the staged kernel instead.
  run_case(1, 512, 1100, true, 24);
}

TEST_P(Linear, GemvWholeRowTiles) {
  // One row of x against rows of whole 256-element units, which on Hopper stream by bulk copies: chunks of 32
  // block pairs with a shorter last one (40 and 12 pairs per row), rows not a multiple of a row group, tiles
  // of several row groups whose chunks are split between warps, and W 16 bytes into its buffer.
  run_case(1, 2560, 1100, true, 30);
  run_case(1, 768, 4101, false, 31, false, 16);
  run_case(1, 256 * 74, 523, true, 32);
}

TEST_P(Linear, InputWrittenByTheOpJustBefore) {
  // x is rewritten each round by an RMSNorm (a kernel that lets its dependents launch before it ends) while
  // the product before still holds x's old values in its caches: every product must see x as the norm just
  // wrote it. One row and four rows of x take different kernels; no round waits for the one before.
  const auto [dev, wt, xt] = GetParam();
  const int64_t k = 2048, n = 2048, rounds = 4;
  std::vector<float> wdeq;
  const Tensor w = make_weight(ctx, wt, n, k, 70, wdeq);
  const Tensor gain = Tensor::from_vector<float>(ctx, test::random_floats(k, 71), {k});
  for (const int64_t m : {1, 4}) {
    Tensor x = Tensor::empty(ctx, {m, k}, xt);
    std::vector<Tensor> src, y;
    for (int64_t r = 0; r < rounds; ++r) {
      src.push_back(cast(
          Tensor::from_vector<float>(
              ctx, test::random_floats(static_cast<size_t>(m * k), 72 + static_cast<uint32_t>(r)), {m, k}),
          xt));
      rms_norm(src.back(), gain, 1e-5f, x);
      y.push_back(linear(x, w));
    }
    for (int64_t r = 0; r < rounds; ++r) {
      // The same kernel into a tensor of its own gives the exact values the product read.
      const std::vector<float> xv = rms_norm(src[static_cast<size_t>(r)], gain, 1e-5f).to_vector<float>();
      SCOPED_TRACE("m=" + std::to_string(m) + " round " + std::to_string(r));
      expect_close(y[static_cast<size_t>(r)].to_vector<float>(), xv, wdeq, m, k, n, nullptr);
    }
  }
}

TEST_P(Linear, BatchedRows) {
  const int64_t k = info(GetParam().weight).block_size == 256 ? 512 : 256;
  run_case(9, k, 33, true, 5);
  run_case(64, k, 130, false, 6);
}

TEST_P(Linear, LongRowsFourPerBlock) {
  // One row of x against 2048 or more long weight rows: blocks take 4 rows and loop over several steps
  // (the grouped Q4_0 rows from K = 8224 on).
  run_case(1, 4864, 2050, true, 9);
  run_case(1, 9216, 2050, false, 19);
}

TEST_P(Linear, ManyRowsOneRowOfX) {
  // One row of x against more than 8192 rows, not a multiple of 16: Q4_0X8 blocks take four groups of 4
  // rows in turn (the last block fewer); 16-bit rows of at most four steps take blocks of 6 rows.
  run_case(1, 512, 8200, true, 15);
  run_case(1, 2048, 8203, false, 16);
}

TEST_P(Linear, LargeK) {
  // K beyond one staged chunk of x.
  run_case(1, 9216, 20, false, 7);
  run_case(5, 9216, 20, true, 8);
}

std::string param_name(const ::testing::TestParamInfo<Param>& p) {
  return std::string(name(p.param.weight)) + "_x" + std::string(name(p.param.x));
}

#define MTL_LINEAR_PARAMS(dev)                                                                 \
  ::testing::Values(Param{dev, DType::F32, DType::F32}, Param{dev, DType::F16, DType::F32},    \
                    Param{dev, DType::BF16, DType::BF16}, Param{dev, DType::F16, DType::F16},  \
                    Param{dev, DType::Q8_0, DType::F32}, Param{dev, DType::Q8_0, DType::BF16}, \
                    Param{dev, DType::Q4_0, DType::F32}, Param{dev, DType::Q4_0, DType::F16},  \
                    Param{dev, DType::Q4_K, DType::F32}, Param{dev, DType::Q4_K, DType::BF16}, \
                    Param{dev, DType::Q6_K, DType::F32}, Param{dev, DType::Q6_K, DType::BF16}, \
                    Param{dev, DType::Q4_0X8, DType::F32}, Param{dev, DType::Q8_0X8, DType::BF16})
INSTANTIATE_TEST_SUITE_P(Cpu, Linear, MTL_LINEAR_PARAMS(Device::cpu()), param_name);
INSTANTIATE_TEST_SUITE_P(Cuda, Linear, MTL_LINEAR_PARAMS(Device::cuda()), param_name);

class LinearMisc : public test::BackendTest {};

TEST_P(LinearMisc, LeadingDimsAndOddSizes) {
  // x [2, 3, 7] (odd K, dense f32 weight, no block constraint), non-contiguous output.
  auto xv = test::random_floats(42, 1), wv = test::random_floats(5 * 7, 2);
  Tensor x = Tensor::from_vector<float>(ctx, xv, {2, 3, 7});
  Tensor w = Tensor::from_vector<float>(ctx, wv, {5, 7});
  Tensor y = linear(x, w);
  ASSERT_EQ(y.shape(), (Shape{2, 3, 5}));
  EXPECT_LE(test::max_rel_error(y.to_vector<float>(), reference(xv, 6, 7, wv, 5, nullptr)), 1e-5);
  Tensor out = Tensor::empty(ctx, {5, 6}, DType::F32).transpose(0, 1);  // [6, 5], not contiguous
  Tensor x2 = x.reshape({6, 7});
  linear(x2, w, Tensor(), out);
  EXPECT_LE(test::max_rel_error(out.contiguous().to_vector<float>(), reference(xv, 6, 7, wv, 5, nullptr)),
            1e-5);
}

TEST_P(LinearMisc, WeightWrittenByTheOpJustBefore) {
  // The weight is the output of the op just before, an RMSNorm over its rows (a kernel that lets its
  // dependents launch before it ends): the product must see every row as that op wrote it, each round.
  const int64_t n = 4096, k = 4096;
  const float eps = 1e-5f;
  const auto gv = test::random_floats(k, 60), xv = test::random_floats(k, 61);
  Tensor gain = Tensor::from_vector<float>(ctx, gv, {k});
  Tensor x = Tensor::from_vector<float>(ctx, xv, {1, k});
  Tensor w = Tensor::empty(ctx, {n, k}, DType::F32), y = Tensor::empty(ctx, {1, n}, DType::F32);
  for (uint32_t round = 0; round < 3; ++round) {
    const auto sv = test::random_floats(static_cast<size_t>(n * k), 62 + round);
    Tensor src = Tensor::from_vector<float>(ctx, sv, {n, k});
    rms_norm(src, gain, eps, w);
    linear(x, w, Tensor(), y);
    std::vector<double> want(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      double ss = 0, dot = 0;
      for (int64_t p = 0; p < k; ++p)
        ss += static_cast<double>(sv[static_cast<size_t>(j * k + p)]) * sv[static_cast<size_t>(j * k + p)];
      const double inv = 1.0 / std::sqrt(ss / static_cast<double>(k) + eps);
      for (int64_t p = 0; p < k; ++p)
        dot += static_cast<double>(xv[static_cast<size_t>(p)]) * sv[static_cast<size_t>(j * k + p)] * inv *
               gv[static_cast<size_t>(p)];
      want[static_cast<size_t>(j)] = dot;
    }
    EXPECT_LE(relative_l2(y.to_vector<float>(), want), 1e-5) << "round " << round;
  }
}

TEST_P(LinearMisc, Errors) {
  Tensor x = Tensor::from_vector<float>(ctx, test::random_floats(64, 1), {2, 32});
  Tensor w = Tensor::from_vector<float>(ctx, test::random_floats(96, 2), {3, 32});
  EXPECT_METALLIC_ERROR(linear(x, Tensor::from_vector<float>(ctx, test::random_floats(93, 2), {3, 31})),
                        ErrorCode::ShapeMismatch);
  EXPECT_METALLIC_ERROR(linear(x, w, Tensor::from_vector<float>(ctx, test::random_floats(4, 3), {4})),
                        ErrorCode::ShapeMismatch);
  Tensor xi = Tensor::from_vector<int32_t>(ctx, std::vector<int32_t>(64, 1), {2, 32});
  EXPECT_METALLIC_ERROR(linear(xi, w), ErrorCode::NotSupported);
  Tensor out16 = Tensor::empty(ctx, {2, 3}, DType::F16);
  EXPECT_METALLIC_ERROR(linear(x, w, Tensor(), out16), ErrorCode::DTypeMismatch);
  // A quantized weight whose rows are not dense (a column slice) is refused.
  std::vector<float> deq;
  Tensor q = make_weight(ctx, DType::Q8_0, 4, 64, 5, deq);
  EXPECT_METALLIC_ERROR(linear(x, Tensor(q.buffer(), q.offset(), {4, 32}, {64, 1}, DType::Q8_0)),
                        ErrorCode::InvalidArgument);
  // K not a multiple of the block size.
  Tensor x16 = Tensor::from_vector<float>(ctx, test::random_floats(16, 1), {1, 16});
  EXPECT_METALLIC_ERROR(linear(x16, Tensor(q.buffer(), q.offset(), {2, 16}, {32, 1}, DType::Q8_0)),
                        ErrorCode::InvalidArgument);
  // A block type without a decoder.
  Tensor iq(q.buffer(), q.offset(), {1, 256}, {256, 1}, DType::IQ2_XXS);
  Tensor x256 = Tensor::from_vector<float>(ctx, test::random_floats(256, 1), {1, 256});
  EXPECT_METALLIC_ERROR(linear(x256, iq), ErrorCode::NotSupported);
}

TEST_P(LinearMisc, GroupBlocks) {
  for (const DType base : {DType::Q4_0, DType::Q8_0}) {
    SCOPED_TRACE(std::string(name(base)));
    std::vector<float> deq;
    const Tensor w = make_weight(ctx, base, 5, 512, 40, deq);
    const Tensor g = group_blocks(w);
    ASSERT_EQ(g.dtype(), *quant::grouped_dtype(base));
    ASSERT_EQ(g.shape(), w.shape());
    const auto bytes = [](const Tensor& t) {
      return Tensor(t.buffer(), t.offset(), {t.nbytes()}, {1}, DType::U8).to_vector<uint8_t>();
    };
    const auto raw = bytes(w);
    std::vector<uint8_t> want(raw.size());
    quant::group_blocks(base, raw.data(), want.data(), 5 * 512);
    EXPECT_EQ(bytes(g), want);
  }
  std::vector<float> deq;
  const Tensor q = make_weight(ctx, DType::Q8_0, 4, 512, 41, deq);
  EXPECT_TRUE(can_group_blocks(q));
  EXPECT_METALLIC_ERROR(group_blocks(make_weight(ctx, DType::Q4_K, 4, 512, 42, deq)),
                        ErrorCode::NotSupported);
  EXPECT_METALLIC_ERROR(group_blocks(make_weight(ctx, DType::Q8_0, 4, 96, 43, deq)),
                        ErrorCode::InvalidArgument);
  // Rows that are not dense (every other row).
  const Tensor strided(q.buffer(), q.offset(), {2, 512}, {1024, 1}, DType::Q8_0);
  EXPECT_FALSE(can_group_blocks(strided));
  EXPECT_METALLIC_ERROR(group_blocks(strided), ErrorCode::InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Cpu, LinearMisc, ::testing::Values(Device::cpu()));
INSTANTIATE_TEST_SUITE_P(Cuda, LinearMisc, ::testing::Values(Device::cuda()));

}  // namespace
}  // namespace metallic
