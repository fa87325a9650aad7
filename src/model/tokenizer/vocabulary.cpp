#include "metallic/model/vocabulary.h"

#include <cstdint>

#include "metallic/core/error.h"

namespace metallic {

void validate(const Vocabulary& vocab) {
  check(vocab.model == "llama" || vocab.model == "gpt2", ErrorCode::NotSupported, "tokenizer.ggml.model '",
        vocab.model, "' is not supported (expected \"llama\" or \"gpt2\")");
  const size_t n = vocab.tokens.size();
  check(n > 0, ErrorCode::Format, "tokenizer.ggml.tokens is empty");
  check(n <= static_cast<size_t>(INT32_MAX), ErrorCode::Format, "tokenizer.ggml.tokens has too many entries (", n,
        ")");
  check(vocab.types.empty() || vocab.types.size() == n, ErrorCode::Format, "tokenizer.ggml.token_type has ",
        vocab.types.size(), " entries for ", n, " tokens");
  for (size_t i = 0; i < vocab.types.size(); ++i) {
    check(vocab.types[i] >= 1 && vocab.types[i] <= 6, ErrorCode::Format, "tokenizer.ggml.token_type[", i, "] = ",
          vocab.types[i], " is not a known token type");
  }
  if (vocab.model == "llama") {
    check(vocab.scores.size() == n, ErrorCode::Format, "tokenizer.ggml.scores has ", vocab.scores.size(),
          " entries for ", n, " tokens");
  } else {
    check(vocab.scores.empty() || vocab.scores.size() == n, ErrorCode::Format, "tokenizer.ggml.scores has ",
          vocab.scores.size(), " entries for ", n, " tokens");
  }
  const auto check_id = [&](const std::optional<int32_t>& id, const char* key) {
    check(!id || (*id >= 0 && static_cast<size_t>(*id) < n), ErrorCode::Format, "tokenizer.ggml.", key, " = ",
          id.value_or(0), " is outside the ", n, " tokens");
  };
  check_id(vocab.bos, "bos_token_id");
  check_id(vocab.eos, "eos_token_id");
  check_id(vocab.unk, "unknown_token_id");
  check_id(vocab.sep, "seperator_token_id");
  check_id(vocab.pad, "padding_token_id");
  check_id(vocab.eot, "eot_token_id");
}

}  // namespace metallic
