#include "metallic/model/config.h"

#include "metallic/core/error.h"

namespace metallic {

const char* to_string(Architecture architecture) {
  return architecture == Architecture::Qwen2 ? "qwen2" : "llama";
}

ModelConfig ModelConfig::from_gguf(const gguf::File& file) {
  const std::string arch = file.get_string("general.architecture");
  ModelConfig c;
  if (arch == "llama") {
    c.architecture = Architecture::Llama;
    c.rope_style = RopeStyle::Interleaved;
  } else if (arch == "qwen2") {
    c.architecture = Architecture::Qwen2;
    c.rope_style = RopeStyle::Neox;
    c.qkv_bias = true;
  } else {
    fail(ErrorCode::NotSupported, "model: architecture '", arch, "' is not supported (llama, qwen2)");
  }
  const auto key = [&](const char* suffix) { return arch + "." + suffix; };
  c.name = file.get_string("general.name", arch);
  c.n_layers = file.get_int(key("block_count"));
  c.n_embd = file.get_int(key("embedding_length"));
  c.n_heads = file.get_int(key("attention.head_count"));
  c.n_kv_heads = file.get_int(key("attention.head_count_kv"), c.n_heads);
  c.n_ff = file.get_int(key("feed_forward_length"));
  c.context_length = file.get_int(key("context_length"), 2048);
  c.rms_eps = file.get_f32(key("attention.layer_norm_rms_epsilon"), 1e-5f);
  c.rope_theta = file.get_f32(key("rope.freq_base"), 10000.0f);
  const auto positive = [](int64_t v) { return v > 0 && v < (int64_t{1} << 40); };
  check(positive(c.n_layers) && positive(c.n_embd) && positive(c.n_heads) && positive(c.n_kv_heads) &&
            positive(c.n_ff) && positive(c.context_length),
        ErrorCode::Format, "model: non-positive hyperparameter (layers ", c.n_layers, ", embedding ",
        c.n_embd, ", heads ", c.n_heads, ", kv heads ", c.n_kv_heads, ", feed-forward ", c.n_ff, ", context ",
        c.context_length, ")");
  check(c.n_heads % c.n_kv_heads == 0, ErrorCode::Format, "model: ", key("attention.head_count"), " = ",
        c.n_heads, " is not a multiple of ", key("attention.head_count_kv"), " = ", c.n_kv_heads);
  c.head_dim = file.get_int(key("attention.key_length"), c.n_embd / c.n_heads);
  check(c.head_dim > 0 && c.head_dim % 2 == 0, ErrorCode::Format, "model: head dimension ", c.head_dim,
        " must be positive and even");
  c.rope_dims = file.get_int(key("rope.dimension_count"), c.head_dim);
  check(c.rope_dims > 0 && c.rope_dims <= c.head_dim && c.rope_dims % 2 == 0, ErrorCode::Format,
        "model: ", key("rope.dimension_count"), " = ", c.rope_dims,
        " must be even and at most the head dimension ", c.head_dim);
  const gguf::TensorInfo& embd = file.tensor("token_embd.weight");
  check(embd.dims.size() == 2 && embd.dims[0] == c.n_embd, ErrorCode::Format,
        "model: token_embd.weight must be [", c.n_embd, ", vocab]");
  c.n_vocab = embd.dims[1];
  if (file.find(key("vocab_size"))) {
    const int64_t declared = file.get_int(key("vocab_size"));
    check(declared == c.n_vocab, ErrorCode::Format, "model: ", key("vocab_size"), " = ", declared,
          " but token_embd.weight has ", c.n_vocab, " rows");
  }
  return c;
}

}  // namespace metallic
