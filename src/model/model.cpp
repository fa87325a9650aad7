#include "metallic/model/model.h"

#include <algorithm>

#include "metallic/core/context.h"
#include "metallic/core/error.h"
#include "metallic/core/memory_pool.h"
#include "metallic/model/quant.h"
#include "metallic/ops/activations.h"
#include "metallic/ops/attention.h"
#include "metallic/ops/copy.h"
#include "metallic/ops/embedding.h"
#include "metallic/ops/fused_linear.h"
#include "metallic/ops/group_blocks.h"
#include "metallic/ops/matmul.h"
#include "metallic/ops/norms.h"
#include "metallic/ops/rope.h"

namespace metallic {
namespace {

// Weight types the matmul kernels compute with; others load but are refused here, by name.
bool is_matmul_type(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_K:
    case DType::Q6_K: return true;
    default: return false;
  }
}

// Copies GGUF tensors to the device (or wraps the mapping on the CPU), checking shapes against the config.
class WeightLoader {
 public:
  WeightLoader(const std::shared_ptr<const gguf::File>& file, const std::shared_ptr<Context>& context,
               const LoadProgress& progress)
      : file_(file), context_(context), progress_(progress), host_(Context::create(Device::cpu())) {
    for (const gguf::TensorInfo& t : file->tensors()) total_ += static_cast<int64_t>(t.bytes);
  }

  // The file's entry for `name`, checked against `dims` (PyTorch order, outermost first; ggml order is its
  // reverse); null when absent and not `required`.
  const gguf::TensorInfo* find(const std::string& name, const std::vector<int64_t>& dims,
                               bool required) const {
    const gguf::TensorInfo* info = file_->find_tensor(name);
    if (!info) {
      check(!required, ErrorCode::Format, "model: required tensor '", name, "' is missing");
      return nullptr;
    }
    std::vector<int64_t> want(dims.rbegin(), dims.rend());
    check(info->dims == want, ErrorCode::Format, "model: tensor '", name, "' has shape ",
          Dims(std::span<const int64_t>(info->dims)).to_string(), " (ggml order), expected ",
          Dims(std::span<const int64_t>(want)).to_string());
    if (dims.size() == 2)
      check(is_matmul_type(info->dtype), ErrorCode::NotSupported, "model: tensor '", name, "' has type ",
            metallic::name(info->dtype),
            ", which the matmul kernels do not support (f32, f16, bf16, q8_0, q4_0, q4_k, q6_k)");
    return info;
  }

  Tensor matrix(const std::string& name, const std::vector<int64_t>& dims, bool required = true) {
    const gguf::TensorInfo* info = find(name, dims, required);
    if (!info) return {};
    // Host view of the mapped bytes, kept alive by the file.
    auto buffer = Buffer::wrap(host_, const_cast<uint8_t*>(info->data), info->bytes, file_);
    Tensor host(buffer, 0, Dims(std::span<const int64_t>(dims)),
                contiguous_strides(Dims(std::span<const int64_t>(dims))), info->dtype);
    Tensor t = context_->device().is_cpu() ? host : device_layout(host.to(context_));
    // Norm gains and biases are computed in f32 whatever their storage type.
    if (dims.size() == 1 && t.dtype() != DType::F32) {
      check(!is_quantized(t.dtype()), ErrorCode::NotSupported, "model: 1-D tensor '", name, "' is quantized");
      t = cast(t, DType::F32);
    }
    done_ += static_cast<int64_t>(info->bytes);
    bytes_ += t.nbytes();
    parameters_ += t.numel();
    if (progress_) progress_(done_, total_);
    return t;
  }

  // Matrices [rows_i, cols] of one type stacked by rows into one device tensor, so that one GEMV or GEMM
  // serves them all; undefined where the types differ, or on the CPU (weights stay in the mapped file).
  Tensor stacked(const std::vector<std::pair<std::string, int64_t>>& parts, int64_t cols) {
    std::vector<const gguf::TensorInfo*> infos;
    int64_t rows = 0;
    for (const auto& [name, n] : parts) {
      infos.push_back(find(name, {n, cols}, true));
      rows += n;
    }
    const DType dtype = infos.front()->dtype;
    if (context_->device().is_cpu() ||
        std::any_of(infos.begin(), infos.end(), [&](const auto* i) { return i->dtype != dtype; }))
      return {};
    const Tensor t = Tensor::empty(context_, {rows, cols}, dtype);
    int64_t offset = 0;
    for (const gguf::TensorInfo* info : infos) {
      const auto bytes = static_cast<int64_t>(info->bytes);
      Tensor(t.buffer(), offset, {bytes}, {1}, DType::U8)
          .assign(std::span<const uint8_t>(info->data, info->bytes));
      offset += bytes;
      done_ += bytes;
      if (progress_) progress_(done_, total_);
    }
    bytes_ += t.nbytes();
    parameters_ += t.numel();
    return device_layout(t);
  }

  // 1-D tensors (biases) joined end to end in f32, decoded on the host from the mapped file.
  Tensor joined(const std::vector<std::pair<std::string, int64_t>>& parts) {
    std::vector<float> values;
    for (const auto& [name, n] : parts) {
      const gguf::TensorInfo* info = find(name, {n}, true);
      check(!is_quantized(info->dtype), ErrorCode::NotSupported, "model: 1-D tensor '", name,
            "' is quantized");
      const size_t at = values.size();
      values.resize(at + static_cast<size_t>(n));
      quant::dequantize(info->dtype, info->data, values.data() + at, n);
      done_ += static_cast<int64_t>(info->bytes);
      if (progress_) progress_(done_, total_);
    }
    const Tensor t = Tensor::from_vector(context_, values, {static_cast<int64_t>(values.size())});
    bytes_ += t.nbytes();
    parameters_ += t.numel();
    return t;
  }

  int64_t bytes() const { return bytes_; }
  int64_t parameters() const { return parameters_; }

 private:
  // Q4_0 and Q8_0 matrices on a GPU take their grouped layout (same bytes and values), whose blocks the
  // GEMV streams as aligned 16-byte vectors.
  static Tensor device_layout(const Tensor& t) { return can_group_blocks(t) ? group_blocks(t) : t; }

  std::shared_ptr<const gguf::File> file_;
  std::shared_ptr<Context> context_;
  LoadProgress progress_;
  std::shared_ptr<Context> host_;
  int64_t total_ = 0, done_ = 0, bytes_ = 0, parameters_ = 0;
};

}  // namespace

std::shared_ptr<Model> Model::load(const std::string& path, const std::shared_ptr<Context>& context,
                                   const LoadProgress& progress) {
  return load(std::make_shared<const gguf::File>(gguf::File::open(path)), context, progress);
}

std::shared_ptr<Model> Model::load(std::shared_ptr<const gguf::File> file,
                                   const std::shared_ptr<Context>& context, const LoadProgress& progress) {
  check(context != nullptr, ErrorCode::InvalidArgument, "model: null context");
  std::shared_ptr<Model> m(new Model());
  m->file_ = file;
  m->context_ = context;
  m->config_ = ModelConfig::from_gguf(*file);
  const ModelConfig& c = m->config_;
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  WeightLoader w(file, context, progress);
  m->token_embd_ = w.matrix("token_embd.weight", {c.n_vocab, c.n_embd});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights L;
    L.attn_norm = w.matrix(p + "attn_norm.weight", {c.n_embd});
    const std::vector<std::pair<std::string, int64_t>> qkv{
        {p + "attn_q.weight", q_dim}, {p + "attn_k.weight", kv_dim}, {p + "attn_v.weight", kv_dim}};
    L.wqkv = w.stacked(qkv, c.n_embd);
    if (!L.wqkv.defined()) {
      L.wq = w.matrix(p + "attn_q.weight", {q_dim, c.n_embd});
      L.wk = w.matrix(p + "attn_k.weight", {kv_dim, c.n_embd});
      L.wv = w.matrix(p + "attn_v.weight", {kv_dim, c.n_embd});
    }
    L.wo = w.matrix(p + "attn_output.weight", {c.n_embd, q_dim});
    if (c.qkv_bias && L.wqkv.defined()) {
      L.bqkv =
          w.joined({{p + "attn_q.bias", q_dim}, {p + "attn_k.bias", kv_dim}, {p + "attn_v.bias", kv_dim}});
    } else {
      L.bq = w.matrix(p + "attn_q.bias", {q_dim}, c.qkv_bias);
      L.bk = w.matrix(p + "attn_k.bias", {kv_dim}, c.qkv_bias);
      L.bv = w.matrix(p + "attn_v.bias", {kv_dim}, c.qkv_bias);
    }
    L.ffn_norm = w.matrix(p + "ffn_norm.weight", {c.n_embd});
    L.w_gate_up = w.stacked({{p + "ffn_gate.weight", c.n_ff}, {p + "ffn_up.weight", c.n_ff}}, c.n_embd);
    if (!L.w_gate_up.defined()) {
      L.w_gate = w.matrix(p + "ffn_gate.weight", {c.n_ff, c.n_embd});
      L.w_up = w.matrix(p + "ffn_up.weight", {c.n_ff, c.n_embd});
    }
    L.w_down = w.matrix(p + "ffn_down.weight", {c.n_embd, c.n_ff});
    m->layers_.push_back(std::move(L));
  }
  m->output_norm_ = w.matrix("output_norm.weight", {c.n_embd});
  m->output_ = w.matrix("output.weight", {c.n_vocab, c.n_embd}, false);
  if (!m->output_.defined()) m->output_ = m->token_embd_;  // tied embeddings
  m->rope_freqs_ = w.matrix("rope_freqs.weight", {c.rope_dims / 2}, false);
  m->weight_bytes_ = w.bytes();
  m->parameters_ = w.parameters();
  return m;
}

int64_t Model::decode_weight_bytes() const {
  const bool tied = output_.buffer() == token_embd_.buffer();
  return weight_bytes_ - (tied ? 0 : token_embd_.nbytes());
}

KVCache Model::make_cache(int64_t capacity) const {
  return make_cache(capacity, context_->device().is_cuda() ? DType::F16 : DType::F32);
}

KVCache Model::make_cache(int64_t capacity, DType dtype) const {
  return KVCache(context_, config_, capacity, dtype);
}

Tensor Model::embed(std::span<const int32_t> ids) const {
  const auto n = static_cast<int64_t>(ids.size());
  if (embedding_table_supported(token_embd_.dtype()))
    return embedding(token_embd_, Tensor::from_vector(context_, ids, {n}), DType::F32);
  // Other block types (e.g. Q4_K, Q6_K tables): decode the few rows needed on the host.
  const gguf::TensorInfo& info = file_->tensor("token_embd.weight");
  const int64_t row_bytes = storage_bytes(info.dtype, config_.n_embd);
  std::vector<float> rows(static_cast<size_t>(n * config_.n_embd));
  for (int64_t i = 0; i < n; ++i)
    quant::dequantize(info.dtype, info.data + ids[static_cast<size_t>(i)] * row_bytes,
                      rows.data() + i * config_.n_embd, config_.n_embd);
  return Tensor::from_vector(context_, rows, {n, config_.n_embd});
}

Tensor Model::prefill(std::span<const int32_t> ids, KVCache& cache, int64_t batch) const {
  check(batch > 0, ErrorCode::InvalidArgument, "prefill: the batch must be positive, got ", batch);
  check(!ids.empty(), ErrorCode::InvalidArgument, "prefill: no tokens");
  Tensor logits;
  for (size_t i = 0; i < ids.size(); i += static_cast<size_t>(batch))
    logits = forward(ids.subspan(i, std::min(ids.size() - i, static_cast<size_t>(batch))), cache);
  return logits;
}

Tensor Model::forward(std::span<const int32_t> ids, KVCache& cache, bool all_logits) const {
  const ModelConfig& c = config_;
  const auto n = static_cast<int64_t>(ids.size());
  check(n > 0, ErrorCode::InvalidArgument, "forward: no tokens");
  for (int32_t id : ids)
    check(id >= 0 && id < c.n_vocab, ErrorCode::InvalidArgument, "forward: token id ", id,
          " outside the vocabulary of ", c.n_vocab);
  cache.reserve(n);
  const int64_t pos = cache.size();
  std::vector<int32_t> positions(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) positions[static_cast<size_t>(i)] = static_cast<int32_t>(pos + i);
  Tensor logits = Tensor::empty(context_, {all_logits ? n : 1, c.n_vocab}, DType::F32);
  // Kernels take per-step scratch from the pool; it is free again once this step's work is queued.
  MemoryPool& pool = context_->pool();
  const MemoryPool::Mark mark = pool.mark();
  run(embed(ids), {Tensor::from_vector(context_, positions, {n}), pos, {}}, cache, logits);
  pool.release(mark);
  cache.advance(n);
  return logits;
}

bool Model::decodes_on_device() const { return embedding_table_supported(token_embd_.dtype()); }

void Model::decode(const Tensor& token, const Tensor& position, const Tensor& key_length,
                   const KVCache& cache, const Tensor& logits) const {
  check(decodes_on_device(), ErrorCode::NotSupported, "decode: the embedding table is ",
        name(token_embd_.dtype()), ", which the embedding op does not gather from");
  MemoryPool& pool = context_->pool();
  const MemoryPool::Mark mark = pool.mark();
  const Tensor x = Tensor::empty(context_, {1, config_.n_embd}, DType::F32, Storage::Pool);
  embedding(token_embd_, token, x);
  run(x, {position, -1, key_length}, cache, logits);
  pool.release(mark);
}

// Several tokens on a GPU multiply on tensor cores in half precision, so the activations that feed and leave
// the products stay in the weights' half type (f16 for block types) and no product pays for casts; the
// residual stream and the norms stay f32. A single token (decode) keeps f32 for the GEMVs.
DType Model::activation_dtype(int64_t tokens) const {
  const DType w = layers_.front().wo.dtype();
  if (!context_->device().is_cuda() || tokens <= 8 || w == DType::F32) return DType::F32;
  return w == DType::BF16 ? DType::BF16 : DType::F16;
}

void Model::run(const Tensor& x, const Placement& placement, const KVCache& cache,
                const Tensor& logits) const {
  const ModelConfig& c = config_;
  const int64_t n = x.dim(0), q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  const auto scratch = [&](const Shape& shape, DType dtype) {
    return Tensor::empty(context_, shape, dtype, Storage::Pool);
  };
  const DType kv = cache.dtype(), a = activation_dtype(n);
  const Tensor qkv = scratch({n, q_dim + 2 * kv_dim}, a);
  const Tensor q = qkv.narrow(1, 0, q_dim), k = qkv.narrow(1, q_dim, kv_dim),
               v = qkv.narrow(1, q_dim + kv_dim, kv_dim);
  const Tensor qh = kv == a ? q : scratch({n, q_dim}, kv);
  // f32 activations take attention's output in f32 directly.
  const Tensor o = scratch({n, q_dim}, a == DType::F32 ? a : kv),
               oa = o.dtype() == a ? o : scratch({n, q_dim}, a);
  const Tensor gate_up = scratch({n, 2 * c.n_ff}, a), act = scratch({n, c.n_ff}, a);
  const Tensor gate = gate_up.narrow(1, 0, c.n_ff), up = gate_up.narrow(1, c.n_ff, c.n_ff);
  const Shape q_heads{1, n, c.n_heads, c.head_dim}, kv_heads{1, n, c.n_kv_heads, c.head_dim};
  const RopeOptions rope_options{c.rope_style, c.rope_theta, 0, c.rope_dims, rope_freqs_};
  const bool prefix = placement.start >= 0;
  const int64_t keys = prefix ? placement.start + n : cache.capacity();
  AttentionOptions attention{0.0f, prefix, placement.start, {}, placement.key_length};

  const auto targets = [&](int64_t layer) {
    return RopeKvTargets{placement.positions, rope_options, qh.view(q_heads), cache.keys(layer),
                         cache.values(layer)};
  };
  // Attention over the cache, once q is rotated into qh and this step's keys and values are in.
  const auto attend_cached = [&](int64_t layer) {
    // Attention reads the cache in its seq-major layout through [B, H, S, D] views.
    scaled_dot_product_attention(qh.view(q_heads).permute({0, 2, 1, 3}),
                                 cache.keys(layer).narrow(1, 0, keys).permute({0, 2, 1, 3}),
                                 cache.values(layer).narrow(1, 0, keys).permute({0, 2, 1, 3}), attention,
                                 o.view(q_heads).permute({0, 2, 1, 3}));
  };
  const auto attend = [&](int64_t layer) {
    const RopeKvTargets t = targets(layer);
    rope_kv_write(q.view(q_heads), k.view(kv_heads), v.view(kv_heads), t.positions, t.rope, t.q_out,
                  t.k_cache, t.v_cache);
    attend_cached(layer);
  };
  // Products take their RMSNorm and residual add along where each is one pass over its weights (the CPU,
  // and decode on a GPU); elsewhere fused_linear would run the separate ops, and the pair of a residual add
  // and the next RMSNorm is one kernel (add_rms_norm) in the unfused sequence below.
  const auto single_pass = [&](const Tensor& w) { return !w.defined() || fused_linear_single_pass(w, n); };
  bool fuse = a == DType::F32 && single_pass(output_);
  for (const LayerWeights& L : layers_)
    fuse = fuse && single_pass(L.wqkv) && single_pass(L.wq) && single_pass(L.wk) && single_pass(L.wv) &&
           single_pass(L.wo) && single_pass(L.w_gate_up) && single_pass(L.w_gate) && single_pass(L.w_up) &&
           single_pass(L.w_down);

  if (fuse) {
    // Every RMSNorm runs inside the product that reads its output, and every residual add inside the
    // product that feeds it: x stays the residual stream throughout.
    const auto normed = [&](const Tensor& gain, LinearEpilogue epilogue = LinearEpilogue::Store) {
      return FusedLinearOptions{true, gain, c.rms_eps, epilogue, true};
    };
    const FusedLinearOptions accumulate{false, {}, 0.f, LinearEpilogue::Accumulate, true};
    for (size_t l = 0; l < layers_.size(); ++l) {
      const LayerWeights& L = layers_[l];
      const auto layer = static_cast<int64_t>(l);
      if (L.wqkv.defined()) {
        fused_linear_rope_kv(x, L.wqkv, L.bqkv, normed(L.attn_norm), targets(layer));
        attend_cached(layer);
      } else {
        fused_linear(x, L.wq, L.bq, normed(L.attn_norm), q);
        fused_linear(x, L.wk, L.bk, normed(L.attn_norm), k);
        fused_linear(x, L.wv, L.bv, normed(L.attn_norm), v);
        attend(layer);
      }
      fused_linear(o, L.wo, {}, accumulate, x);
      if (L.w_gate_up.defined()) {
        fused_linear(x, L.w_gate_up, {}, normed(L.ffn_norm, LinearEpilogue::SwiGLU), act);
      } else {
        fused_linear(x, L.w_gate, {}, normed(L.ffn_norm), gate);
        fused_linear(x, L.w_up, {}, normed(L.ffn_norm), up);
        swiglu(gate, up, act);
      }
      fused_linear(act, L.w_down, {}, accumulate, x);
    }
    fused_linear(logits.dim(0) == n ? x : x.narrow(0, n - 1, 1), output_, {}, normed(output_norm_), logits);
    return;
  }

  // `h` and `sub` are f32; their `a` twins (the same tensors when a is f32) meet the products.
  const Tensor h = scratch({n, c.n_embd}, DType::F32), sub = scratch({n, c.n_embd}, DType::F32);
  const Tensor ha = a == DType::F32 ? h : scratch({n, c.n_embd}, a);
  const Tensor suba = a == DType::F32 ? sub : scratch({n, c.n_embd}, a);
  const auto to = [](const Tensor& from, const Tensor& into) {
    if (from.data() != into.data()) copy(from, into);
  };
  rms_norm(x, layers_.front().attn_norm, c.rms_eps, h);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerWeights& L = layers_[l];
    const auto layer = static_cast<int64_t>(l);
    to(h, ha);
    if (L.wqkv.defined()) {
      linear(ha, L.wqkv, L.bqkv, qkv);
    } else {
      linear(ha, L.wq, L.bq, q);
      linear(ha, L.wk, L.bk, k);
      linear(ha, L.wv, L.bv, v);
    }
    attend(layer);
    to(o, oa);
    linear(oa, L.wo, {}, suba);
    to(suba, sub);
    add_rms_norm(sub, x, L.ffn_norm, c.rms_eps, x, h);
    to(h, ha);
    if (L.w_gate_up.defined()) {
      linear(ha, L.w_gate_up, {}, gate_up);
    } else {
      linear(ha, L.w_gate, {}, gate);
      linear(ha, L.w_up, {}, up);
    }
    swiglu(gate, up, act);
    linear(act, L.w_down, {}, suba);
    to(suba, sub);
    const Tensor& next_norm = l + 1 < layers_.size() ? layers_[l + 1].attn_norm : output_norm_;
    add_rms_norm(sub, x, next_norm, c.rms_eps, x, h);
  }
  linear(logits.dim(0) == n ? h : h.narrow(0, n - 1, 1), output_, {}, logits);
}

}  // namespace metallic
