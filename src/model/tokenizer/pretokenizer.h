// The regular expressions that cut text into words before byte-level BPE merges within each word.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace metallic::tokenizer_detail {

/// A compiled pre-tokenizer pattern, selected by GGUF's `tokenizer.ggml.pre`.
class PreTokenizer {
 public:
  /// Compiles the pattern for `pre`; throws Error(NotSupported) for an unknown name.
  explicit PreTokenizer(std::string_view pre);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  /// Appends the words of `text` to `words`, covering every byte in order. Ill-formed UTF-8 bytes
  /// each form a word of their own and cut the text around them.
  void split(std::string_view text, std::vector<std::string_view>& words) const;

 private:
  void split_valid(std::string_view text, std::vector<std::string_view>& words) const;

  struct Pattern;
  std::unique_ptr<Pattern> pattern_;
};

}  // namespace metallic::tokenizer_detail
