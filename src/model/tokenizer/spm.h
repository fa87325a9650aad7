// SentencePiece-style segmentation: score-driven merges of adjacent pieces with byte fallback.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "metallic/model/vocabulary.h"
#include "model/tokenizer/word_cache.h"

namespace metallic::tokenizer_detail {

/// The byte a SentencePiece byte piece "<0xNN>" (two upper- or lower-case hex digits) stands for.
std::optional<unsigned char> parse_byte_piece(std::string_view piece);

/// Segments text whose spaces are already "▁" (U+2581) into the pieces of a "llama" vocabulary.
class SpmEncoder {
 public:
  /// Indexes the mergeable pieces and the `<0xNN>` byte tokens of `vocab`, which must outlive this.
  explicit SpmEncoder(const Vocabulary& vocab);

  /// Appends the ids of `text` to `out`: starting from single characters (each byte of ill-formed
  /// UTF-8 on its own), repeatedly merges the adjacent pair whose joined piece has the highest score,
  /// leftmost first on ties; what is not a piece at the end goes out as byte tokens, or `<unk>`.
  void encode(std::string_view text, std::vector<int32_t>& out) const;

 private:
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  void encode_segment(std::string_view text, std::vector<int32_t>& out) const;
  void emit(std::string_view symbol, std::vector<int32_t>& out,
            const std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>>& splits)
      const;

  const Vocabulary& vocab_;
  std::unordered_map<std::string_view, int32_t> pieces_;  // normal, user-defined and unused pieces
  int32_t byte_tokens_[256];                              // -1 where the vocabulary lacks `<0xNN>`
  int32_t unk_;
  // True when no piece has "▁" right after another character, as with vocabularies trained to split at
  // whitespace: then no merge crosses the start of a word, and words can be segmented one by one, which
  // keeps the merge queue small on long texts without changing the result.
  bool split_at_words_ = true;
  WordCache cache_;  // used when split_at_words_
};

}  // namespace metallic::tokenizer_detail
