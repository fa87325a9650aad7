#include "model/tokenizer/utf8.h"

#include <cstdint>

namespace metallic::tokenizer_detail {

Utf8Unit utf8_unit(std::string_view bytes) {
  const auto b0 = static_cast<uint8_t>(bytes[0]);
  if (b0 < 0x80) return {1, true, false};
  // Continuation count and the allowed range of the second byte, which is what excludes overlongs,
  // surrogates and code points past U+10FFFF.
  size_t need = 0;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {1, false, false};
  }
  for (size_t i = 1; i <= need; ++i) {
    if (i >= bytes.size()) return {i, false, true};
    const auto b = static_cast<uint8_t>(bytes[i]);
    if (b < lo || b > hi) return {i, false, false};
    lo = 0x80;
    hi = 0xBF;
  }
  return {need + 1, true, false};
}

std::string to_valid_utf8(std::string_view bytes, bool per_byte) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    const Utf8Unit unit = utf8_unit(bytes.substr(pos));
    if (unit.valid) {
      out.append(bytes.substr(pos, unit.length));
    } else {
      for (size_t i = 0; i < (per_byte ? unit.length : 1); ++i) out.append(kReplacement);
    }
    pos += unit.length;
  }
  return out;
}

}  // namespace metallic::tokenizer_detail
