// The patterns are those of the reference tokenizers (GPT-2's encoder.py, Qwen2's and Llama 3's
// tokenizer.json). The reference runs them on Oniguruma, whose Unicode `\s` is the White_Space property;
// PCRE2's `\s` under UCP omits U+0085, so the patterns spell White_Space out as a class.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "model/tokenizer/pretokenizer.h"

#include <pcre2.h>

#include "metallic/core/error.h"
#include "model/tokenizer/utf8.h"

namespace metallic::tokenizer_detail {
namespace {

#define WS "\\x{09}-\\x{0D}\\x{85}\\p{Z}"
constexpr const char* kGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])|[" WS "]+";
constexpr const char* kQwen2 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^" WS
                               "\\p{L}\\p{N}]+[\\r\\n]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+";
constexpr const char* kLlama3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^" WS
    "\\p{L}\\p{N}]+[\\r\\n]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+";
#undef WS

const char* pattern_for(std::string_view pre) {
  if (pre == "default" || pre == "gpt-2" || pre == "gpt2") return kGpt2;
  if (pre == "qwen2") return kQwen2;
  if (pre == "llama-bpe" || pre == "llama3") return kLlama3;
  fail(ErrorCode::NotSupported, "tokenizer: pre-tokenizer '", pre, "' is not supported");
}

}  // namespace

struct PreTokenizer::Pattern {
  pcre2_code* code = nullptr;
  ~Pattern() { pcre2_code_free(code); }
};

PreTokenizer::PreTokenizer(std::string_view pre) : pattern_(std::make_unique<Pattern>()) {
  const char* source = pattern_for(pre);
  int error = 0;
  PCRE2_SIZE offset = 0;
  pattern_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source), PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (pattern_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    fail(ErrorCode::Internal, "tokenizer: pre-tokenizer '", pre, "' does not compile at ", offset, ": ",
         reinterpret_cast<const char*>(message));
  }
  // JIT is only a speed-up; the interpreter gives the same matches when it is unavailable.
  pcre2_jit_compile(pattern_->code, PCRE2_JIT_COMPLETE);
}

PreTokenizer::~PreTokenizer() = default;

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& words) const {
  size_t run = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const Utf8Unit unit = utf8_unit(text.substr(pos));
    if (unit.valid) {
      pos += unit.length;
      continue;
    }
    split_valid(text.substr(run, pos - run), words);
    for (size_t i = 0; i < unit.length; ++i) words.push_back(text.substr(pos + i, 1));
    pos += unit.length;
    run = pos;
  }
  split_valid(text.substr(run), words);
}

void PreTokenizer::split_valid(std::string_view text, std::vector<std::string_view>& words) const {
  if (text.empty()) return;
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(pattern_->code, nullptr);
  if (data == nullptr) fail(ErrorCode::OutOfMemory, "tokenizer: cannot allocate regex match data");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  size_t unmatched = 0;  // the patterns cover every character, but keep any gap as a word of its own
  int rc = 0;
  while (start < text.size()) {
    rc = pcre2_match(pattern_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data, nullptr);
    if (rc < 0) break;
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    const size_t begin = ovector[0], end = ovector[1];
    if (end == begin) {
      // None of the patterns can match empty; stepping on guards against looping forever if one did.
      start = begin + utf8_unit(text.substr(begin)).length;
      continue;
    }
    if (begin > unmatched) words.push_back(text.substr(unmatched, begin - unmatched));
    words.push_back(text.substr(begin, end - begin));
    start = unmatched = end;
  }
  pcre2_match_data_free(data);
  if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
    fail(ErrorCode::Internal, "tokenizer: pre-tokenizer match failed with PCRE2 error ", rc);
  }
  if (unmatched < text.size()) words.push_back(text.substr(unmatched));
}

}  // namespace metallic::tokenizer_detail
