// Text <-> token ids for the vocabularies of Llama-family (SentencePiece) and GPT-2/Qwen2-family
// (byte-level BPE) models, matching the reference libraries id for id.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "metallic/model/vocabulary.h"

namespace metallic {

/// Encodes and decodes text with one vocabulary. All members are const and safe to call from several
/// threads at once (the per-word segmentation cache is internally locked).
///
/// Input text that is not valid UTF-8 never fails: each byte of an ill-formed sequence becomes its own
/// unit, which SentencePiece vocabularies encode through their `<0xNN>` byte tokens (or `<unk>` when those
/// are missing) and byte-level BPE through the byte's own token. Such bytes also end a pre-token.
/// Text is not Unicode-normalized (Qwen2's reference applies NFC first; pass NFC text to match it).
class Tokenizer {
 public:
  /// Builds the lookup tables; throws Error(Format) for an inconsistent vocabulary and
  /// Error(NotSupported) for an unknown model or pre-tokenizer.
  explicit Tokenizer(Vocabulary vocab);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  /// Token ids of `text`. `add_bos` prepends the BOS id (when the vocabulary has one); with
  /// `parse_special` the spellings of control and user-defined tokens are matched whole (longest first),
  /// otherwise they are ordinary text. Callers that follow the vocabulary's own convention pass
  /// `add_bos_by_default()`.
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

  /// The text of a whole sequence, as the reference library renders it: SentencePiece drops the dummy
  /// prefix's leading space, shows `<unk>` as " ⁇ " and control tokens as nothing; ill-formed UTF-8 becomes
  /// U+FFFD. `skip_special` also drops control tokens of byte-level vocabularies. Bad ids throw
  /// Error(InvalidArgument).
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  /// The vocabulary's spelling of `id` (e.g. "▁Hello", "Ġworld", "<0x0A>").
  const std::string& piece(int32_t id) const;

  /// The raw bytes `id` contributes to a decoded text, leading space included ("▁" -> space, `<0xNN>` ->
  /// that byte, SentencePiece control tokens -> nothing). May be part of a UTF-8 character.
  const std::string& token_bytes(int32_t id) const;

  /// The type of token `id`.
  TokenType type(int32_t id) const;

  /// Number of tokens in the vocabulary.
  int32_t size() const;

  /// Whether encode() should be asked to add BOS by default for this vocabulary.
  bool add_bos_by_default() const;

  /// Special ids; empty when the vocabulary has none.
  std::optional<int32_t> bos() const;
  std::optional<int32_t> eos() const;
  std::optional<int32_t> unk() const;
  std::optional<int32_t> pad() const;
  std::optional<int32_t> eot() const;

  /// The vocabulary this tokenizer was built from.
  const Vocabulary& vocabulary() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Turns ids generated one at a time into text without ever splitting a UTF-8 character: bytes of an
/// incomplete character are held back until it completes. Ill-formed sequences become U+FFFD (one per
/// maximal ill-formed subpart). Token bytes are emitted as token_bytes() gives them (no dummy-prefix
/// stripping), so the first token of a SentencePiece sequence may start with a space.
class StreamDecoder {
 public:
  /// Decodes with `tokenizer`, which must outlive the decoder. `skip_special` drops control tokens.
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);

  /// Adds one id; returns the text that became complete (possibly empty). Bad ids throw
  /// Error(InvalidArgument) and leave the state unchanged.
  std::string feed(int32_t id);

  /// Ends the stream: returns U+FFFD for a held-back incomplete character (empty otherwise) and resets.
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace metallic
