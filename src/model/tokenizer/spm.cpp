#include "model/tokenizer/spm.h"

#include <algorithm>
#include <iterator>
#include <queue>

#include "metallic/core/error.h"
#include "model/tokenizer/utf8.h"

namespace metallic::tokenizer_detail {
namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";

// Whether `piece` has "▁" right after a character other than "▁".
bool joins_word_start(std::string_view piece) {
  for (size_t k = piece.find(kSpaceMark, 1); k != std::string_view::npos; k = piece.find(kSpaceMark, k + 1)) {
    if (k < kSpaceMark.size() || piece.substr(k - kSpaceMark.size(), kSpaceMark.size()) != kSpaceMark)
      return true;
  }
  return false;
}

struct Symbol {
  std::string_view text;
  int prev, next;
};

struct Candidate {
  float score;
  int left;
  size_t length;  // of the joined text, to recognise candidates made stale by an earlier merge
};

struct Lower {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::optional<unsigned char> parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return std::nullopt;
  const int hi = hex_digit(piece[3]), lo = hex_digit(piece[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<unsigned char>(hi * 16 + lo);
}

SpmEncoder::SpmEncoder(const Vocabulary& vocab) : vocab_(vocab), unk_(vocab.unk.value_or(-1)) {
  std::fill(std::begin(byte_tokens_), std::end(byte_tokens_), -1);
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    const auto type = static_cast<TokenType>(vocab.types[id]);
    const std::string& text = vocab.tokens[id];
    if (type == TokenType::Normal || type == TokenType::UserDefined || type == TokenType::Unused) {
      pieces_.emplace(text, static_cast<int32_t>(id));
      if (split_at_words_ && joins_word_start(text)) split_at_words_ = false;
    } else if (type == TokenType::Byte) {
      const auto value = parse_byte_piece(text);
      if (value && byte_tokens_[*value] < 0) byte_tokens_[*value] = static_cast<int32_t>(id);
    }
  }
  for (int b = 0; b < 256; ++b) {
    if (byte_tokens_[b] >= 0 || unk_ >= 0) continue;
    const char* digits = "0123456789ABCDEF";
    fail(ErrorCode::Format, "tokenizer.ggml.tokens: SentencePiece vocabulary has neither the byte token <0x",
         digits[b >> 4], digits[b & 15], "> nor an unknown token");
  }
}

void SpmEncoder::encode(std::string_view text, std::vector<int32_t>& out) const {
  if (!split_at_words_) {
    encode_segment(text, out);
    return;
  }
  // "▁" bytes cannot occur inside another character, so a byte search finds exactly the word starts.
  size_t start = 0;
  for (size_t k = text.find(kSpaceMark, 1); k != std::string_view::npos; k = text.find(kSpaceMark, k + 1)) {
    if (k >= kSpaceMark.size() && text.substr(k - kSpaceMark.size(), kSpaceMark.size()) == kSpaceMark)
      continue;
    encode_word(text.substr(start, k - start), out);
    start = k;
  }
  encode_word(text.substr(start), out);
}

void SpmEncoder::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  cache_.encode(word, out, [this](std::string_view w, std::vector<int32_t>& o) { encode_segment(w, o); });
}

void SpmEncoder::encode_segment(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<Symbol> symbols;
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Unit unit = utf8_unit(text.substr(pos));
    const size_t length = unit.valid ? unit.length : 1;
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({text.substr(pos, length), index - 1, index + 1});
    pos += length;
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  std::priority_queue<Candidate, std::vector<Candidate>, Lower> queue;
  // Unused pieces may be merged through but are not emitted; remember what they were joined from.
  std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> splits;
  const auto propose = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view joined(symbols[left].text.data(),
                                  symbols[left].text.size() + symbols[right].text.size());
    const auto it = pieces_.find(joined);
    if (it == pieces_.end()) return;
    queue.push({vocab_.scores[it->second], left, joined.size()});
    if (static_cast<TokenType>(vocab_.types[it->second]) == TokenType::Unused) {
      splits.emplace(joined, std::make_pair(symbols[left].text, symbols[right].text));
    }
  };
  for (size_t i = 1; i < symbols.size(); ++i) propose(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.left];
    if (left.text.empty() || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    if (left.text.size() + right.text.size() != top.length) continue;
    left.text = std::string_view(left.text.data(), top.length);
    right.text = {};
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    propose(left.prev, top.left);
    propose(top.left, left.next);
  }

  for (int i = 0; i >= 0; i = symbols[i].next) emit(symbols[i].text, out, splits);
}

void SpmEncoder::emit(
    std::string_view symbol, std::vector<int32_t>& out,
    const std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>>& splits) const {
  if (const auto split = splits.find(symbol); split != splits.end()) {
    emit(split->second.first, out, splits);
    emit(split->second.second, out, splits);
    return;
  }
  if (const auto it = pieces_.find(symbol); it != pieces_.end()) {
    out.push_back(it->second);
    return;
  }
  for (const char c : symbol) {
    const int32_t byte_token = byte_tokens_[static_cast<unsigned char>(c)];
    out.push_back(byte_token >= 0 ? byte_token : unk_);
  }
}

}  // namespace metallic::tokenizer_detail
