#include "metallic/model/tokenizer.h"
#include "model/tokenizer/utf8.h"

namespace metallic {

using tokenizer_detail::kReplacement;
using tokenizer_detail::utf8_unit;
using tokenizer_detail::Utf8Unit;

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(&tokenizer), skip_special_(skip_special) {}

std::string StreamDecoder::feed(int32_t id) {
  const std::string& bytes = tokenizer_->token_bytes(id);
  if (skip_special_ && tokenizer_->type(id) == TokenType::Control) return {};
  pending_ += bytes;
  std::string out;
  size_t pos = 0;
  while (pos < pending_.size()) {
    const Utf8Unit unit = utf8_unit(std::string_view(pending_).substr(pos));
    if (unit.truncated) break;  // may still complete with the next token
    if (unit.valid) {
      out.append(pending_, pos, unit.length);
    } else {
      out.append(kReplacement);
    }
    pos += unit.length;
  }
  pending_.erase(0, pos);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = pending_.empty() ? std::string() : std::string(kReplacement);
  pending_.clear();
  return out;
}

}  // namespace metallic
