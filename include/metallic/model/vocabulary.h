// The token inventory a tokenizer works from, independent of the file it came from.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace metallic {

namespace gguf {
class File;
}

/// Role of a token, numbered as GGUF's `tokenizer.ggml.token_type`.
enum class TokenType : int32_t {
  Normal = 1,       ///< an ordinary piece produced by the segmentation model
  Unknown = 2,      ///< the stand-in for text the model cannot represent (`<unk>`)
  Control = 3,      ///< markers such as BOS/EOS or `<|im_start|>`; never produced from plain text
  UserDefined = 4,  ///< pieces added by hand that must be matched whole
  Unused = 5,       ///< reserved slots
  Byte = 6,         ///< SentencePiece byte-fallback pieces `<0xNN>`
};

/// Everything a Tokenizer needs: the pieces, how to segment text into them and the special ids.
/// `model` is "llama" (SentencePiece-style, score-driven merges) or "gpt2" (byte-level BPE with ranked
/// `merges`); `pre` names the pre-tokenizer of byte-level BPE ("default"/"gpt-2", "qwen2", "llama-bpe").
struct Vocabulary {
  std::string model;
  std::string pre = "default";
  std::vector<std::string> tokens;  ///< spelling of each id (SentencePiece "▁" or GPT-2 byte-level text)
  std::vector<float> scores;        ///< per-token merge priority of "llama"; may be empty for "gpt2"
  std::vector<int32_t> types;       ///< TokenType per id; empty means all Normal
  std::vector<std::string> merges;  ///< "left right" pairs of "gpt2", highest priority first
  std::optional<int32_t> bos, eos, unk, sep, pad, eot;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix =
      false;  ///< "llama": prefix the text with one space, as SentencePiece's dummy prefix
};

/// Checks the internal consistency of `vocab` (lengths, token types, special ids in range); throws
/// Error(Format) naming the offending GGUF key, or Error(NotSupported) for a model other than
/// "llama" and "gpt2".
void validate(const Vocabulary& vocab);

/// Reads the `tokenizer.ggml.*` keys of a GGUF file. Missing or inconsistent keys throw Error(Format)
/// naming the key.
Vocabulary vocabulary_from_gguf(const gguf::File& file);

}  // namespace metallic
