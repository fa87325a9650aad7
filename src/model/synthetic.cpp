#include "metallic/model/synthetic.h"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "backend/random.h"
#include "metallic/core/error.h"
#include "metallic/model/quant.h"

namespace metallic {
namespace {

// Fills rows [begin, end) of a [rows, cols] matrix with uniform noise of standard deviation 0.02 and stores
// them as `dtype` at `out` (which points at row `begin`).
void produce_rows(DType dtype, int64_t cols, int64_t begin, int64_t end, uint64_t seed, uint8_t* out) {
  constexpr double kHalfWidth = 0.02 * 1.7320508075688772;  // uniform(-a, a) has std a / sqrt(3)
  std::vector<float> row(static_cast<size_t>(cols));
  const int64_t row_bytes = storage_bytes(dtype, cols);
  for (int64_t r = begin; r < end; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      row[static_cast<size_t>(c)] = static_cast<float>(
          kHalfWidth * (2 * backend::uniform01(seed, static_cast<uint64_t>(r * cols + c)) - 1));
    quant::quantize(dtype, row.data(), out + (r - begin) * row_bytes, cols);
  }
}

// A producer for a random [rows, cols] matrix, quantizing on all cores.
std::function<void(uint8_t*)> random_matrix(DType dtype, int64_t rows, int64_t cols, uint64_t seed) {
  return [=](uint8_t* out) {
    const int64_t threads = std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, rows);
    const int64_t per = (rows + threads - 1) / threads;
    std::vector<std::thread> pool;
    for (int64_t t = 0; t < threads; ++t) {
      const int64_t begin = t * per, end = std::min(rows, begin + per);
      if (begin >= end) break;
      pool.emplace_back(produce_rows, dtype, cols, begin, end, seed,
                        out + begin * storage_bytes(dtype, cols));
    }
    for (std::thread& th : pool) th.join();
  };
}

std::function<void(uint8_t*)> constant_vector(int64_t n, float value) {
  return [=](uint8_t* out) { std::fill_n(reinterpret_cast<float*>(out), n, value); };
}

}  // namespace

SyntheticSpec SyntheticSpec::preset(std::string_view name) {
  SyntheticSpec s;
  s.name = std::string(name);
  if (name == "builtin") {
    s.layers = 4, s.embd = 256, s.heads = 8, s.kv_heads = 4, s.ff = 688, s.vocab = 512, s.context = 2048;
  } else if (name == "qwen2.5-0.5b") {
    s.architecture = "qwen2", s.layers = 24, s.embd = 896, s.heads = 14, s.kv_heads = 2, s.ff = 4864;
    s.vocab = 151936, s.context = 32768, s.rope_theta = 1e6f, s.tied = true;
  } else if (name == "qwen2.5-1.5b") {
    s.architecture = "qwen2", s.layers = 28, s.embd = 1536, s.heads = 12, s.kv_heads = 2, s.ff = 8960;
    s.vocab = 151936, s.context = 32768, s.rope_theta = 1e6f, s.tied = true;
  } else if (name == "qwen2.5-7b") {
    s.architecture = "qwen2", s.layers = 28, s.embd = 3584, s.heads = 28, s.kv_heads = 4, s.ff = 18944;
    s.vocab = 152064, s.context = 32768, s.rope_theta = 1e6f;
  } else if (name == "llama3-8b") {
    s.layers = 32, s.embd = 4096, s.heads = 32, s.kv_heads = 8, s.ff = 14336, s.vocab = 128256,
    s.context = 8192;
    s.rope_theta = 500000.0f;
  } else {
    fail(ErrorCode::InvalidArgument, "synthetic model: unknown preset '", name, "'");
  }
  return s;
}

std::vector<std::string> SyntheticSpec::presets() {
  return {"builtin", "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b", "llama3-8b"};
}

WeightTypeFn uniform_weight_type(DType dtype) {
  return [dtype](const std::string&) { return dtype; };
}

void add_synthetic_model(gguf::Writer& w, const SyntheticSpec& s, const WeightTypeFn& type_of,
                         uint64_t seed) {
  check(s.architecture == "llama" || s.architecture == "qwen2", ErrorCode::InvalidArgument,
        "synthetic model: architecture '", s.architecture, "'");
  check(s.heads > 0 && s.kv_heads > 0 && s.embd % s.heads == 0 && s.heads % s.kv_heads == 0 && s.vocab >= 259,
        ErrorCode::InvalidArgument, "synthetic model '", s.name, "': inconsistent shape");
  const std::string a = s.architecture;
  w.add("general.architecture", a);
  w.add("general.name", "synthetic-" + s.name);
  w.add(a + ".block_count", static_cast<uint32_t>(s.layers));
  w.add(a + ".embedding_length", static_cast<uint32_t>(s.embd));
  w.add(a + ".attention.head_count", static_cast<uint32_t>(s.heads));
  w.add(a + ".attention.head_count_kv", static_cast<uint32_t>(s.kv_heads));
  w.add(a + ".feed_forward_length", static_cast<uint32_t>(s.ff));
  w.add(a + ".context_length", static_cast<uint32_t>(s.context));
  w.add(a + ".attention.layer_norm_rms_epsilon", 1e-6f);
  w.add(a + ".rope.freq_base", s.rope_theta);
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char piece[8];
    std::snprintf(piece, sizeof piece, "<0x%02X>", b);
    tokens.emplace_back(piece);
    types.push_back(6);
  }
  while (static_cast<int64_t>(tokens.size()) < s.vocab) {
    tokens.push_back("tok" + std::to_string(tokens.size()));
    types.push_back(1);
  }
  w.add("tokenizer.ggml.model", "llama");
  w.add("tokenizer.ggml.pre", "default");
  w.add("tokenizer.ggml.tokens", std::move(tokens));
  w.add("tokenizer.ggml.scores", std::vector<float>(static_cast<size_t>(s.vocab), 0.0f));
  w.add("tokenizer.ggml.token_type", std::move(types));
  w.add("tokenizer.ggml.bos_token_id", uint32_t{1});
  w.add("tokenizer.ggml.eos_token_id", uint32_t{2});
  w.add("tokenizer.ggml.unknown_token_id", uint32_t{0});
  w.add("tokenizer.ggml.add_bos_token", true);

  uint64_t stream = seed;
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols) {
    DType t = type_of(name);
    if (cols % info(t).block_size != 0) t = DType::Q8_0;
    check(cols % info(t).block_size == 0, ErrorCode::InvalidArgument, "synthetic model: rows of ", cols,
          " elements cannot be stored as ", metallic::name(t));
    w.add_tensor(name, t, {cols, rows}, random_matrix(t, rows, cols, backend::mix64(++stream)));
  };
  auto vector = [&](const std::string& name, int64_t n, float value) {
    w.add_tensor(name, DType::F32, {n}, constant_vector(n, value));
  };
  const int64_t head_dim = s.embd / s.heads, kv = s.kv_heads * head_dim;
  matrix("token_embd.weight", s.vocab, s.embd);
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    vector(p + "attn_norm.weight", s.embd, 1.0f);
    matrix(p + "attn_q.weight", s.embd, s.embd);
    matrix(p + "attn_k.weight", kv, s.embd);
    matrix(p + "attn_v.weight", kv, s.embd);
    if (a == "qwen2") {
      vector(p + "attn_q.bias", s.embd, 0.01f);
      vector(p + "attn_k.bias", kv, 0.01f);
      vector(p + "attn_v.bias", kv, 0.01f);
    }
    matrix(p + "attn_output.weight", s.embd, s.embd);
    vector(p + "ffn_norm.weight", s.embd, 1.0f);
    matrix(p + "ffn_gate.weight", s.ff, s.embd);
    matrix(p + "ffn_up.weight", s.ff, s.embd);
    matrix(p + "ffn_down.weight", s.embd, s.ff);
  }
  vector("output_norm.weight", s.embd, 1.0f);
  if (!s.tied) matrix("output.weight", s.vocab, s.embd);
}

std::shared_ptr<const gguf::File> synthetic_model(const SyntheticSpec& spec, const WeightTypeFn& type_of,
                                                  uint64_t seed) {
  gguf::Writer w;
  add_synthetic_model(w, spec, type_of, seed);
  return std::make_shared<const gguf::File>(gguf::File::from_bytes(w.to_bytes()));
}

}  // namespace metallic
