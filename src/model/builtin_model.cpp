#include "metallic/model/builtin_model.h"

#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace metallic {
namespace {

constexpr int64_t kLayers = 4, kEmbd = 256, kHeads = 8, kKvHeads = 4, kFf = 688, kVocab = 512, kContext = 2048;

}  // namespace

std::shared_ptr<const gguf::File> builtin_model(uint64_t seed) {
  gguf::Writer w;
  w.add("general.architecture", "llama");
  w.add("general.name", "builtin-random-llama");
  w.add("llama.block_count", uint32_t{kLayers});
  w.add("llama.embedding_length", uint32_t{kEmbd});
  w.add("llama.attention.head_count", uint32_t{kHeads});
  w.add("llama.attention.head_count_kv", uint32_t{kKvHeads});
  w.add("llama.feed_forward_length", uint32_t{kFf});
  w.add("llama.context_length", uint32_t{kContext});
  w.add("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.add("llama.rope.freq_base", 10000.0f);
  // SentencePiece-style vocabulary: control tokens, the 256 byte tokens, then filler pieces.
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char piece[8];
    std::snprintf(piece, sizeof piece, "<0x%02X>", b);
    tokens.emplace_back(piece);
    types.push_back(6);
  }
  while (static_cast<int64_t>(tokens.size()) < kVocab) {
    tokens.push_back("tok" + std::to_string(tokens.size()));
    types.push_back(1);
  }
  w.add("tokenizer.ggml.model", "llama");
  w.add("tokenizer.ggml.pre", "default");
  w.add("tokenizer.ggml.tokens", tokens);
  w.add("tokenizer.ggml.scores", std::vector<float>(tokens.size(), 0.0f));
  w.add("tokenizer.ggml.token_type", types);
  w.add("tokenizer.ggml.unknown_token_id", uint32_t{0});
  w.add("tokenizer.ggml.bos_token_id", uint32_t{1});
  w.add("tokenizer.ggml.eos_token_id", uint32_t{2});
  w.add("tokenizer.ggml.add_bos_token", true);

  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  // dims in ggml order: row length first.
  auto add = [&](const std::string& name, std::vector<int64_t> dims, bool gain) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    std::vector<float> v(static_cast<size_t>(n), 1.0f);
    if (!gain)
      for (float& x : v) x = normal(rng);
    w.add_tensor(name, DType::F32, dims, v.data(), v.size() * sizeof(float));
  };
  const int64_t head_dim = kEmbd / kHeads;
  add("token_embd.weight", {kEmbd, kVocab}, false);
  for (int64_t l = 0; l < kLayers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {kEmbd}, true);
    add(p + "attn_q.weight", {kEmbd, kEmbd}, false);
    add(p + "attn_k.weight", {kEmbd, kKvHeads * head_dim}, false);
    add(p + "attn_v.weight", {kEmbd, kKvHeads * head_dim}, false);
    add(p + "attn_output.weight", {kEmbd, kEmbd}, false);
    add(p + "ffn_norm.weight", {kEmbd}, true);
    add(p + "ffn_gate.weight", {kEmbd, kFf}, false);
    add(p + "ffn_up.weight", {kEmbd, kFf}, false);
    add(p + "ffn_down.weight", {kFf, kEmbd}, false);
  }
  add("output_norm.weight", {kEmbd}, true);
  return std::make_shared<const gguf::File>(gguf::File::from_bytes(w.to_bytes()));
}

}  // namespace metallic
