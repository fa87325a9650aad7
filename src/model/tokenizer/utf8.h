// UTF-8 scanning shared by the encoders and decoders. Validity follows the Unicode standard's table of
// well-formed byte sequences (no overlongs, no surrogates, nothing above U+10FFFF).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace metallic::tokenizer_detail {

/// What starts at the front of a byte string.
struct Utf8Unit {
  size_t length;   ///< bytes of the character, or of the maximal ill-formed subpart (at least 1)
  bool valid;      ///< a complete well-formed character
  bool truncated;  ///< ill-formed only because the input ended inside a character
};

/// Classifies the first unit of non-empty `bytes`.
Utf8Unit utf8_unit(std::string_view bytes);

/// U+FFFD encoded as UTF-8.
inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

/// `bytes` with every maximal ill-formed subpart replaced by one U+FFFD, or by one U+FFFD per byte when
/// `per_byte` (the convention of SentencePiece's byte pieces).
std::string to_valid_utf8(std::string_view bytes, bool per_byte);

}  // namespace metallic::tokenizer_detail
