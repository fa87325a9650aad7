// Byte-level BPE (GPT-2 family): bytes shown as printable characters, merges applied by rank.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "metallic/model/vocabulary.h"
#include "model/tokenizer/word_cache.h"

namespace metallic::tokenizer_detail {

/// The printable character (as UTF-8) that GPT-2's byte-level alphabet uses for byte `b`.
std::string_view byte_to_char(unsigned char b);

/// The bytes a byte-level spelling stands for; false when it uses characters outside the alphabet.
bool chars_to_bytes(std::string_view spelling, std::string& bytes);

/// Merges within one pre-token word, remembering the result per word.
class BpeEncoder {
 public:
  /// Indexes the tokens by the bytes they stand for and the ranked merges; throws Error(Format) for a
  /// merge that is malformed or names a token the vocabulary lacks, or a missing single-byte token.
  explicit BpeEncoder(const Vocabulary& vocab);

  /// Appends the ids of the raw bytes `word` to `out`.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  void merge(std::string_view word, std::vector<int32_t>& out) const;

  int32_t byte_tokens_[256];
  std::unordered_map<uint64_t, Merge> merges_;

  WordCache cache_;
};

}  // namespace metallic::tokenizer_detail
