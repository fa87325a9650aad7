#include "model/tokenizer/bpe.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <queue>

#include "metallic/core/error.h"
#include "model/tokenizer/utf8.h"

namespace metallic::tokenizer_detail {
namespace {

// GPT-2 shows the printable bytes (33-126, 161-172, 174-255) as the characters with the same code point and
// the remaining 68 bytes as U+0100, U+0101, ... in byte order, so that no piece contains spaces or controls.
struct ByteAlphabet {
  std::array<std::string, 256> chars;
  std::unordered_map<std::string_view, unsigned char> bytes;

  ByteAlphabet() {
    unsigned next = 256;
    for (unsigned b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      const unsigned cp = printable ? b : next++;
      std::string& s = chars[b];
      if (cp < 0x80) {
        s.push_back(static_cast<char>(cp));
      } else {
        s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    }
    for (unsigned b = 0; b < 256; ++b) bytes.emplace(chars[b], static_cast<unsigned char>(b));
  }
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet instance;
  return instance;
}

struct Symbol {
  int32_t id;
  int prev, next;
};

struct Candidate {
  int32_t rank;
  int left;
  int32_t left_id, right_id;  // to recognise candidates made stale by an earlier merge
};

struct Later {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

std::string_view byte_to_char(unsigned char b) { return alphabet().chars[b]; }

bool chars_to_bytes(std::string_view spelling, std::string& bytes) {
  bytes.clear();
  const auto& table = alphabet().bytes;
  for (size_t pos = 0; pos < spelling.size();) {
    const Utf8Unit unit = utf8_unit(spelling.substr(pos));
    const auto it = unit.valid ? table.find(spelling.substr(pos, unit.length)) : table.end();
    if (it == table.end()) return false;
    bytes.push_back(static_cast<char>(it->second));
    pos += unit.length;
  }
  return true;
}

BpeEncoder::BpeEncoder(const Vocabulary& vocab) {
  std::unordered_map<std::string_view, int32_t> by_spelling;
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    by_spelling.emplace(vocab.tokens[id], static_cast<int32_t>(id));
  }
  for (unsigned b = 0; b < 256; ++b) {
    const auto it = by_spelling.find(byte_to_char(static_cast<unsigned char>(b)));
    check(it != by_spelling.end(), ErrorCode::Format,
          "tokenizer.ggml.tokens: byte-level vocabulary lacks the token for byte ", b);
    byte_tokens_[b] = it->second;
  }
  merges_.reserve(vocab.merges.size());
  std::string joined;
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const std::string& merge = vocab.merges[rank];
    // Pieces never contain a space, but one may start with the space-like byte character; split at the
    // first space after the first character.
    const size_t space = merge.find(' ', 1);
    check(space != std::string::npos && merge.find(' ', space + 1) == std::string::npos, ErrorCode::Format,
          "tokenizer.ggml.merges[", rank, "] '", merge, "' is not two pieces separated by one space");
    const std::string_view left = std::string_view(merge).substr(0, space);
    const std::string_view right = std::string_view(merge).substr(space + 1);
    joined.assign(left).append(right);
    const auto l = by_spelling.find(left), r = by_spelling.find(right), j = by_spelling.find(joined);
    check(l != by_spelling.end() && r != by_spelling.end() && j != by_spelling.end(), ErrorCode::Format,
          "tokenizer.ggml.merges[", rank, "] '", merge, "' refers to a piece not in tokenizer.ggml.tokens");
    // A pair listed twice keeps its first, highest-priority rank.
    merges_.emplace(pair_key(l->second, r->second), Merge{static_cast<int32_t>(rank), j->second});
  }
}

void BpeEncoder::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  cache_.encode(word, out, [this](std::string_view w, std::vector<int32_t>& o) { merge(w, o); });
}

void BpeEncoder::merge(std::string_view word, std::vector<int32_t>& out) const {
  std::vector<Symbol> symbols(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    symbols[i] = {byte_tokens_[static_cast<unsigned char>(word[i])], static_cast<int>(i) - 1,
                  static_cast<int>(i) + 1};
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  std::priority_queue<Candidate, std::vector<Candidate>, Later> queue;
  const auto propose = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (it != merges_.end()) queue.push({it->second.rank, left, symbols[left].id, symbols[right].id});
  };
  for (size_t i = 1; i < symbols.size(); ++i) propose(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.left];
    if (left.id != top.left_id || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    if (right.id != top.right_id) continue;
    left.id = merges_.at(pair_key(top.left_id, top.right_id)).result;
    right.id = -1;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    propose(left.prev, top.left);
    propose(top.left, left.next);
  }
  for (int i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

}  // namespace metallic::tokenizer_detail
