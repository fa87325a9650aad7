// Splitting text at the spellings of control and user-defined tokens, which are never segmented.
#pragma once

#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "metallic/model/vocabulary.h"

namespace metallic::tokenizer_detail {

/// A stretch of input: either plain text to segment or one whole special token.
struct Fragment {
  std::string_view text;  ///< empty for a token
  int32_t token = -1;     ///< the special token, or -1 for text
};

/// Finds special-token spellings in text, longest first at each position.
class SpecialSplitter {
 public:
  /// Collects the control and user-defined tokens of `vocab` (tokens with empty spelling are ignored).
  explicit SpecialSplitter(const Vocabulary& vocab);

  /// `text` cut into fragments; plain stretches are never empty.
  std::vector<Fragment> split(std::string_view text) const;

 private:
  struct Candidate {
    std::string_view spelling;
    int32_t id;
  };
  // Candidates by first byte, longest spelling first, so the first hit at a position is the longest.
  std::unordered_map<unsigned char, std::vector<Candidate>> by_first_byte_;
};

}  // namespace metallic::tokenizer_detail
