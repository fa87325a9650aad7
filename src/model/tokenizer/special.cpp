#include "model/tokenizer/special.h"

#include <algorithm>

namespace metallic::tokenizer_detail {

SpecialSplitter::SpecialSplitter(const Vocabulary& vocab) {
  for (size_t id = 0; id < vocab.types.size(); ++id) {
    const auto type = static_cast<TokenType>(vocab.types[id]);
    const std::string& spelling = vocab.tokens[id];
    if ((type != TokenType::Control && type != TokenType::UserDefined) || spelling.empty()) continue;
    by_first_byte_[static_cast<unsigned char>(spelling[0])].push_back({spelling, static_cast<int32_t>(id)});
  }
  for (auto& [byte, candidates] : by_first_byte_) {
    // Equal spellings keep the lower id, as a lookup table keyed by spelling would.
    std::stable_sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
      return a.spelling.size() > b.spelling.size();
    });
  }
}

std::vector<Fragment> SpecialSplitter::split(std::string_view text) const {
  std::vector<Fragment> fragments;
  size_t plain = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const Candidate* hit = nullptr;
    if (const auto it = by_first_byte_.find(static_cast<unsigned char>(text[pos]));
        it != by_first_byte_.end()) {
      for (const Candidate& c : it->second) {
        if (text.compare(pos, c.spelling.size(), c.spelling) == 0) {
          hit = &c;
          break;
        }
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    if (pos > plain) fragments.push_back({text.substr(plain, pos - plain), -1});
    fragments.push_back({{}, hit->id});
    pos += hit->spelling.size();
    plain = pos;
  }
  if (plain < text.size()) fragments.push_back({text.substr(plain), -1});
  return fragments;
}

}  // namespace metallic::tokenizer_detail
