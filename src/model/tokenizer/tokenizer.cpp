// The Tokenizer front end: special-token splitting, then the vocabulary's own segmentation per fragment;
// and whole-sequence decoding with each reference library's conventions.
#include "metallic/model/tokenizer.h"

#include "metallic/core/error.h"
#include "model/tokenizer/bpe.h"
#include "model/tokenizer/pretokenizer.h"
#include "model/tokenizer/special.h"
#include "model/tokenizer/spm.h"
#include "model/tokenizer/utf8.h"

namespace metallic {

using namespace tokenizer_detail;

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";         // U+2581, SentencePiece's space
constexpr std::string_view kUnknownSurface = " \xE2\x81\x87 ";  // SentencePiece's rendering of <unk>

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string_view::npos; pos = hit + from.size()) {
    out.append(text.substr(pos, hit - pos)).append(to);
  }
  out.append(text.substr(pos));
  return out;
}

Vocabulary checked(Vocabulary vocab) {
  validate(vocab);
  if (vocab.types.empty()) vocab.types.assign(vocab.tokens.size(), static_cast<int32_t>(TokenType::Normal));
  return vocab;
}

}  // namespace

struct Tokenizer::Impl {
  explicit Impl(Vocabulary v) : vocab(checked(std::move(v))), specials(vocab) {
    const bool spm = vocab.model == "llama";
    if (spm) {
      spm_encoder = std::make_unique<SpmEncoder>(vocab);
    } else {
      bpe_encoder = std::make_unique<BpeEncoder>(vocab);
      pretokenizer = std::make_unique<PreTokenizer>(vocab.pre);
    }
    bytes.resize(vocab.tokens.size());
    for (size_t id = 0; id < vocab.tokens.size(); ++id) bytes[id] = spm ? spm_bytes(id) : bpe_bytes(id);
  }

  std::string spm_bytes(size_t id) const {
    const std::string& spelling = vocab.tokens[id];
    switch (static_cast<TokenType>(vocab.types[id])) {
      case TokenType::Control: return {};
      case TokenType::Unknown: return std::string(kUnknownSurface);
      case TokenType::Byte: {
        const auto value = parse_byte_piece(spelling);
        return value ? std::string(1, static_cast<char>(*value)) : spelling;
      }
      default: return replace_all(spelling, kSpaceMark, " ");
    }
  }

  std::string bpe_bytes(size_t id) const {
    // Spellings outside the byte alphabet (hand-added tokens) stand for themselves.
    std::string out;
    return chars_to_bytes(vocab.tokens[id], out) ? out : vocab.tokens[id];
  }

  void check_id(int32_t id, const char* what) const {
    check(id >= 0 && static_cast<size_t>(id) < vocab.tokens.size(), ErrorCode::InvalidArgument, what,
          ": token id ", id, " is outside the vocabulary of ", vocab.tokens.size());
  }

  TokenType type(int32_t id) const { return static_cast<TokenType>(vocab.types[id]); }

  std::string decode_spm(std::span<const int32_t> ids) const {
    // SentencePiece: byte pieces are decoded in runs (one U+FFFD per bad byte); the first piece that
    // follows only invisible ones loses the leading space of the dummy prefix.
    std::string text, run;
    bool at_start = true, stripped = false;
    const auto flush_run = [&] {
      text += to_valid_utf8(run, true);
      run.clear();
    };
    for (const int32_t id : ids) {
      check_id(id, "decode");
      const TokenType t = type(id);
      if (t == TokenType::Byte) {
        run += bytes[id];
        continue;
      }
      flush_run();
      if (stripped || !text.empty()) at_start = false;
      stripped = false;
      std::string_view piece = bytes[id];
      if (at_start && vocab.add_space_prefix && t != TokenType::Unknown && !piece.empty() &&
          piece[0] == ' ') {
        piece.remove_prefix(1);
        stripped = true;
      }
      text += to_valid_utf8(piece, true);
    }
    flush_run();
    return text;
  }

  std::string decode_bpe(std::span<const int32_t> ids, bool skip_special) const {
    std::string raw;
    for (const int32_t id : ids) {
      check_id(id, "decode");
      if (skip_special && type(id) == TokenType::Control) continue;
      raw += bytes[id];
    }
    return to_valid_utf8(raw, false);
  }

  Vocabulary vocab;
  std::vector<std::string> bytes;
  SpecialSplitter specials;
  std::unique_ptr<SpmEncoder> spm_encoder;
  std::unique_ptr<BpeEncoder> bpe_encoder;
  std::unique_ptr<PreTokenizer> pretokenizer;
};

Tokenizer::Tokenizer(Vocabulary vocab) : impl_(std::make_unique<Impl>(std::move(vocab))) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  const Impl& m = *impl_;
  std::vector<int32_t> ids;
  if (add_bos && m.vocab.bos) ids.push_back(*m.vocab.bos);
  const std::vector<Fragment> fragments =
      parse_special ? m.specials.split(text) : std::vector<Fragment>{Fragment{text, -1}};
  std::vector<std::string_view> words;
  // SentencePiece's dummy prefix goes before the text and, like llama.cpp, again after each special token.
  bool after_special = true;
  for (const Fragment& f : fragments) {
    if (f.token >= 0) {
      ids.push_back(f.token);
      after_special = true;
      continue;
    }
    if (f.text.empty()) continue;
    if (m.spm_encoder) {
      std::string escaped =
          m.vocab.add_space_prefix && after_special ? std::string(kSpaceMark) : std::string();
      escaped += replace_all(f.text, " ", kSpaceMark);
      m.spm_encoder->encode(escaped, ids);
    } else {
      words.clear();
      m.pretokenizer->split(f.text, words);
      for (const std::string_view word : words) m.bpe_encoder->encode_word(word, ids);
    }
    after_special = false;
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  return impl_->spm_encoder ? impl_->decode_spm(ids) : impl_->decode_bpe(ids, skip_special);
}

const std::string& Tokenizer::piece(int32_t id) const {
  impl_->check_id(id, "piece");
  return impl_->vocab.tokens[id];
}

const std::string& Tokenizer::token_bytes(int32_t id) const {
  impl_->check_id(id, "token_bytes");
  return impl_->bytes[id];
}

TokenType Tokenizer::type(int32_t id) const {
  impl_->check_id(id, "type");
  return impl_->type(id);
}

int32_t Tokenizer::size() const { return static_cast<int32_t>(impl_->vocab.tokens.size()); }
bool Tokenizer::add_bos_by_default() const { return impl_->vocab.add_bos; }
std::optional<int32_t> Tokenizer::bos() const { return impl_->vocab.bos; }
std::optional<int32_t> Tokenizer::eos() const { return impl_->vocab.eos; }
std::optional<int32_t> Tokenizer::unk() const { return impl_->vocab.unk; }
std::optional<int32_t> Tokenizer::pad() const { return impl_->vocab.pad; }
std::optional<int32_t> Tokenizer::eot() const { return impl_->vocab.eot; }
const Vocabulary& Tokenizer::vocabulary() const { return impl_->vocab; }

}  // namespace metallic
