// Segmentation results per word: real text repeats words, and merging a word is costly compared with a
// lookup. Shared by the encoders; safe to use from several threads.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace metallic::tokenizer_detail {

/// A bounded map from a word's bytes to its ids; starts over when full.
class WordCache {
 public:
  /// Appends the ids of `word` to `out`, computing them with `segment(word, out)` on a miss.
  template <class Segment>
  void encode(std::string_view word, std::vector<int32_t>& out, const Segment& segment) const {
    if (word.size() > kMaxWordBytes) {
      segment(word, out);
      return;
    }
    {
      std::lock_guard lock(mutex_);
      if (const auto it = map_.find(word); it != map_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const size_t first = out.size();
    segment(word, out);
    std::lock_guard lock(mutex_);
    if (map_.size() >= kMaxEntries) map_.clear();
    map_.emplace(std::string(word),
                 std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()));
  }

 private:
  static constexpr size_t kMaxEntries = 1 << 16;
  static constexpr size_t kMaxWordBytes = 256;  // longer words are rare and not worth keeping

  struct Hash {
    using is_transparent = void;  // look words up without copying them into a std::string
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> map_;
};

}  // namespace metallic::tokenizer_detail
