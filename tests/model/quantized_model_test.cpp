// A model whose matrices are stored in every supported type at once, against its twin with the same weights
// de-quantized to f32: the quantized paths must compute the same function.
#include <gtest/gtest.h>

#include <cmath>

#include "metallic/model/model.h"
#include "metallic/model/quant.h"
#include "metallic/model/synthetic.h"
#include "test_support.h"

namespace metallic {
namespace {

SyntheticSpec small_spec(const std::string& architecture) {
  SyntheticSpec s;
  s.name = "mixed";
  s.architecture = architecture;
  s.layers = 2, s.embd = 256, s.heads = 4, s.kv_heads = 2, s.ff = 512, s.vocab = 512, s.context = 64;
  return s;
}

DType mixed_type(const std::string& tensor) {
  static const std::vector<std::pair<std::string, DType>> kTypes = {
      {"attn_q", DType::F16},       {"attn_k", DType::BF16},     {"attn_v", DType::Q8_0},
      {"attn_output", DType::Q4_0}, {"ffn_gate", DType::Q4_K},   {"ffn_up", DType::Q6_K},
      {"ffn_down", DType::Q8_0},    {"token_embd", DType::Q6_K}, {"output", DType::Q4_K}};
  for (const auto& [part, type] : kTypes)
    if (tensor.find(part) != std::string::npos) return type;
  return DType::F32;
}

// The same file with every tensor de-quantized to f32 on the CPU reference path.
std::shared_ptr<const gguf::File> dequantized_twin(const gguf::File& file) {
  gguf::Writer w;
  for (const gguf::KeyValue& kv : file.metadata()) w.add(kv.key, kv.value);
  for (const gguf::TensorInfo& t : file.tensors()) {
    std::vector<float> values(static_cast<size_t>(t.elements()));
    quant::dequantize(t.dtype, t.data, values.data(), t.elements());
    w.add_tensor(t.name, DType::F32, t.dims, values.data(), values.size() * sizeof(float));
  }
  return std::make_shared<const gguf::File>(gguf::File::from_bytes(w.to_bytes()));
}

class QuantizedModel : public test::BackendTest {};

// On CUDA, prompts of more than 8 tokens against non-f32 weights run the GEMMs in f16 on the tensor cores
// (activations rounded to f16 once per matmul); one token takes the GEMV, which rounds the activations to
// 8 bits per block of 32 against quantized weights (about 5e-3 relative per matmul).
double tolerance(const Context& ctx, size_t tokens) {
  return ctx.device().is_cuda() ? (tokens > 8 ? 5e-3 : 3e-2) : 1e-4;
}

void compare(const std::shared_ptr<Context>& ctx, const std::string& architecture) {
  const auto mixed = synthetic_model(small_spec(architecture), mixed_type, 5);
  const auto twin = dequantized_twin(*mixed);
  EXPECT_EQ(mixed->tensor("blk.1.ffn_gate.weight").dtype, DType::Q4_K);
  const auto a = Model::load(mixed, ctx), b = Model::load(twin, ctx);
  EXPECT_LT(a->weight_bytes() * 3, b->weight_bytes());  // the quantized model stays quantized on the device
  const std::vector<int32_t> ids = {1, 300, 17, 511, 42, 9, 258, 100, 7, 64, 3};
  for (size_t n : {size_t{1}, ids.size()}) {  // the decode (one row) and prefill paths
    KVCache ca = a->make_cache(16, DType::F32), cb = b->make_cache(16, DType::F32);
    const std::span<const int32_t> part(ids.data(), n);
    const std::vector<float> la = a->forward(part, ca, true).to_vector<float>();
    const std::vector<float> lb = b->forward(part, cb, true).to_vector<float>();
    const double err = test::relative_l2(la, lb);
    EXPECT_TRUE(err <= tolerance(*ctx, n)) << architecture << ", " << n << " tokens: relative L2 " << err;
  }
}

TEST_P(QuantizedModel, LlamaMatchesItsDequantizedTwin) { compare(ctx, "llama"); }
TEST_P(QuantizedModel, Qwen2MatchesItsDequantizedTwin) { compare(ctx, "qwen2"); }

INSTANTIATE_TEST_SUITE_P(Cpu, QuantizedModel, ::testing::Values(Device::cpu()));
INSTANTIATE_TEST_SUITE_P(Cuda, QuantizedModel, ::testing::Values(Device::cuda()));

}  // namespace
}  // namespace metallic
