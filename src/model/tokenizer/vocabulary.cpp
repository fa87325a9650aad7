#include "metallic/model/vocabulary.h"

#include <cstdint>

#include "metallic/core/error.h"
#include "metallic/model/gguf.h"

namespace metallic {

void validate(const Vocabulary& vocab) {
  check(vocab.model == "llama" || vocab.model == "gpt2", ErrorCode::NotSupported, "tokenizer.ggml.model '",
        vocab.model, "' is not supported (expected \"llama\" or \"gpt2\")");
  const size_t n = vocab.tokens.size();
  check(n > 0, ErrorCode::Format, "tokenizer.ggml.tokens is empty");
  check(n <= static_cast<size_t>(INT32_MAX), ErrorCode::Format,
        "tokenizer.ggml.tokens has too many entries (", n, ")");
  check(vocab.types.empty() || vocab.types.size() == n, ErrorCode::Format, "tokenizer.ggml.token_type has ",
        vocab.types.size(), " entries for ", n, " tokens");
  for (size_t i = 0; i < vocab.types.size(); ++i) {
    check(vocab.types[i] >= 1 && vocab.types[i] <= 6, ErrorCode::Format, "tokenizer.ggml.token_type[", i,
          "] = ", vocab.types[i], " is not a known token type");
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

Vocabulary vocabulary_from_gguf(const gguf::File& file) {
  Vocabulary vocab;
  vocab.model = file.get_string("tokenizer.ggml.model");
  vocab.pre = file.get_string("tokenizer.ggml.pre", "default");
  vocab.tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (file.find("tokenizer.ggml.scores")) vocab.scores = file.get_f32_array("tokenizer.ggml.scores");
  if (file.find("tokenizer.ggml.token_type")) vocab.types = file.get_i32_array("tokenizer.ggml.token_type");
  if (vocab.model == "gpt2") vocab.merges = file.get_string_array("tokenizer.ggml.merges");
  const auto read_id = [&](const char* key, std::optional<int32_t>& id) {
    const std::string full = std::string("tokenizer.ggml.") + key;
    if (!file.find(full)) return;
    const int64_t value = file.get_int(full);
    check(value >= 0 && static_cast<uint64_t>(value) < vocab.tokens.size(), ErrorCode::Format, full, " = ",
          value, " is outside the ", vocab.tokens.size(), " tokens");
    id = static_cast<int32_t>(value);
  };
  read_id("bos_token_id", vocab.bos);
  read_id("eos_token_id", vocab.eos);
  read_id("unknown_token_id", vocab.unk);
  read_id("seperator_token_id", vocab.sep);
  read_id("padding_token_id", vocab.pad);
  read_id("eot_token_id", vocab.eot);
  // Defaults as llama.cpp assumes them for files that leave the flags out.
  const bool spm = vocab.model == "llama";
  vocab.add_bos = file.get_bool("tokenizer.ggml.add_bos_token", spm);
  vocab.add_eos = file.get_bool("tokenizer.ggml.add_eos_token", false);
  vocab.add_space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix", spm);
  validate(vocab);
  return vocab;
}

}  // namespace metallic
