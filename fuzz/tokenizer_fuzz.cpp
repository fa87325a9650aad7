// libFuzzer target for the tokenizers: arbitrary bytes (ill-formed UTF-8 included) are encoded with the
// three fixture vocabularies, decoded whole and streamed, and the round trips are checked:
//  - byte-level BPE: the tokens' bytes concatenate back to the input exactly, whatever its bytes, and the
//    stream decoder produces exactly what decode() does;
//  - SentencePiece (special tokens off): the tokens' bytes are the input with the dummy-prefix space and
//    "▁" shown as spaces, since every byte that is not a piece goes through a byte token;
//  - every decoded or streamed text is valid UTF-8.
// The first input byte picks the flags (bit 0: parse special tokens, bit 1: add BOS). Fixtures are found
// through METALLIC_SHARED (default ../shared).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "metallic/core/error.h"
#include "metallic/model/gguf.h"
#include "metallic/model/tokenizer.h"

namespace {

struct Vocab {
  const char* name;
  std::unique_ptr<metallic::Tokenizer> tokenizer;
};

std::vector<Vocab>& vocabularies() {
  static std::vector<Vocab> all = [] {
    const char* root = std::getenv("METALLIC_SHARED");
    const std::string base = std::string(root ? root : "../shared") + "/tokenizers/";
    std::vector<Vocab> v;
    for (const char* name : {"llama2-spm", "qwen2-bpe", "gpt2-bpe"}) {
      const std::string path = base + name + "/" + name + ".vocab.gguf";
      try {
        v.push_back({name, std::make_unique<metallic::Tokenizer>(
                               metallic::vocabulary_from_gguf(metallic::gguf::File::open(path)))});
      } catch (const metallic::Error& e) {
        std::fprintf(stderr, "tokenizer_fuzz: cannot load %s: %s\n", path.c_str(), e.what());
        std::abort();
      }
    }
    return v;
  }();
  return all;
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b < 0x80) {
      ++i;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      n = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      n = 2;
      lo = b == 0xE0 ? 0xA0 : 0x80;
      hi = b == 0xED ? 0x9F : 0xBF;
    } else if (b >= 0xF0 && b <= 0xF4) {
      n = 3;
      lo = b == 0xF0 ? 0x90 : 0x80;
      hi = b == 0xF4 ? 0x8F : 0xBF;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if (c < lo || c > hi) return false;
      lo = 0x80;
      hi = 0xBF;
    }
    i += n + 1;
  }
  return true;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size()) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

void require(bool condition, const char* vocab, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "tokenizer_fuzz: %s: %s\n", vocab, what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool parse_special = data[0] & 1;
  const bool add_bos = data[0] & 2;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);

  for (const Vocab& v : vocabularies()) {
    const metallic::Tokenizer& tok = *v.tokenizer;
    const std::vector<int32_t> ids = tok.encode(text, add_bos, parse_special);
    const std::string decoded = tok.decode(ids);
    require(valid_utf8(decoded), v.name, "decode() gave ill-formed UTF-8");

    std::string raw;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i == 0 && add_bos && tok.bos()) continue;
      raw += tok.token_bytes(ids[i]);
    }
    const bool spm = tok.vocabulary().model == "llama";
    if (!spm) {
      require(raw == text, v.name, "token bytes do not reproduce the input");
    } else if (!parse_special) {
      const std::string expected = text.empty() ? text : " " + replace_all(text, "\xE2\x96\x81", " ");
      require(raw == expected, v.name, "token bytes do not reproduce the escaped input");
    }

    metallic::StreamDecoder stream(tok);
    std::string streamed;
    for (const int32_t id : ids) streamed += stream.feed(id);
    streamed += stream.flush();
    require(valid_utf8(streamed), v.name, "the stream decoder gave ill-formed UTF-8");
    if (!spm) require(streamed == decoded, v.name, "streamed text differs from decode()");
  }
  return 0;
}
