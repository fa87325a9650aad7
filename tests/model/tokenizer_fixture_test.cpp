// The tokenizer against the reference libraries' outputs in the shared fixtures (sentencepiece for
// llama2-spm, Hugging Face tokenizers for qwen2-bpe and gpt2-bpe), loaded through the GGUF vocabularies.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "metallic/model/gguf.h"
#include "metallic/model/tokenizer.h"
#include "test_support.h"

namespace metallic {
namespace {

struct Fixture {
  const char* name;
  bool spm;
};

std::vector<nlohmann::json> read_jsonl(const std::string& relative) {
  std::ifstream in(test::shared_path(relative));
  EXPECT_TRUE(in.good()) << "cannot open " << relative;
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

std::string ids_text(const std::vector<int32_t>& ids) { return nlohmann::json(ids).dump(); }

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

class TokenizerFixture : public ::testing::TestWithParam<Fixture> {
 protected:
  static const Tokenizer& tokenizer(const char* name) {
    static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
    auto& slot = cache[name];
    if (!slot) {
      const auto path = test::shared_path(std::string("tokenizers/") + name + "/" + name + ".vocab.gguf");
      slot = std::make_unique<Tokenizer>(vocabulary_from_gguf(gguf::File::open(path.string())));
    }
    return *slot;
  }
  std::string dir() const { return std::string("tokenizers/") + GetParam().name + "/"; }
};

TEST_P(TokenizerFixture, EncodeMatchesReference) {
  const Tokenizer& tok = tokenizer(GetParam().name);
  const auto cases = read_jsonl(dir() + "cases.jsonl");
  ASSERT_FALSE(cases.empty());
  int matched = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text");
    const std::vector<int32_t> expected = c.at("ids");
    const std::vector<int32_t> got = tok.encode(text, false, true);
    if (got == expected) {
      ++matched;
    } else {
      ADD_FAILURE() << "text " << nlohmann::json(text).dump() << "\n expected " << ids_text(expected)
                    << "\n got      " << ids_text(got);
    }
    const auto& pieces = c.contains("pieces") ? c.at("pieces") : c.at("tokens");
    for (size_t i = 0; i < expected.size() && i < pieces.size(); ++i) {
      EXPECT_EQ(tok.piece(expected[i]), pieces[i].get<std::string>()) << "id " << expected[i];
    }
    if (GetParam().spm) {
      std::vector<int32_t> with_bos{1};
      with_bos.insert(with_bos.end(), expected.begin(), expected.end());
      EXPECT_EQ(tok.encode(text, tok.add_bos_by_default(), true), with_bos) << nlohmann::json(text).dump();
    }
  }
  std::printf("[ %s ] encode %d/%zu\n", GetParam().name, matched, cases.size());
}

TEST_P(TokenizerFixture, DecodeOfEncodeCasesMatchesReference) {
  const Tokenizer& tok = tokenizer(GetParam().name);
  for (const auto& c : read_jsonl(dir() + "cases.jsonl")) {
    const std::vector<int32_t> ids = c.at("ids");
    EXPECT_EQ(tok.decode(ids), c.at("decoded").get<std::string>()) << "ids " << ids_text(ids);
  }
}

TEST_P(TokenizerFixture, DecodeCasesMatchReference) {
  const Tokenizer& tok = tokenizer(GetParam().name);
  const auto cases = read_jsonl(dir() + "decode.jsonl");
  ASSERT_FALSE(cases.empty());
  int matched = 0;
  for (const auto& c : cases) {
    const std::vector<int32_t> ids = c.at("ids");
    const std::string expected = c.at("text");
    const std::string got = tok.decode(ids);
    EXPECT_EQ(got, expected) << "ids " << ids_text(ids);
    bool ok = got == expected;
    if (c.contains("text_skip_special")) {
      EXPECT_EQ(tok.decode(ids, true), c.at("text_skip_special").get<std::string>())
          << "ids " << ids_text(ids);
      ok = ok && tok.decode(ids, true) == c.at("text_skip_special").get<std::string>();
    }
    std::string raw;
    for (const int32_t id : ids) raw += tok.token_bytes(id);
    const std::string hex = c.contains("piece_bytes_hex") ? c.at("piece_bytes_hex") : c.at("bytes_hex");
    EXPECT_EQ(raw, from_hex(hex)) << "ids " << ids_text(ids);
    matched += ok && raw == from_hex(hex);
  }
  std::printf("[ %s ] decode %d/%zu\n", GetParam().name, matched, cases.size());
}

// Streaming never splits a character: byte-level vocabularies stream exactly the reference text; a
// SentencePiece stream keeps the dummy prefix's space, so it equals the raw piece bytes where those are
// valid UTF-8 (the reference text then has no U+FFFD).
TEST_P(TokenizerFixture, StreamDecodeMatchesReference) {
  const Tokenizer& tok = tokenizer(GetParam().name);
  for (const auto& c : read_jsonl(dir() + "decode.jsonl")) {
    const std::vector<int32_t> ids = c.at("ids");
    const std::string text = c.at("text");
    StreamDecoder stream(tok);
    std::string streamed;
    for (const int32_t id : ids) streamed += stream.feed(id);
    streamed += stream.flush();
    if (!GetParam().spm) {
      EXPECT_EQ(streamed, text) << "ids " << ids_text(ids);
    } else if (text.find("\xEF\xBF\xBD") == std::string::npos) {
      EXPECT_EQ(streamed, from_hex(c.at("piece_bytes_hex"))) << "ids " << ids_text(ids);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shared, TokenizerFixture,
                         ::testing::Values(Fixture{"llama2-spm", true}, Fixture{"qwen2-bpe", false},
                                           Fixture{"gpt2-bpe", false}),
                         [](const auto& param_info) {
                           std::string name = param_info.param.name;
                           for (char& ch : name)
                             if (ch == '-') ch = '_';
                           return name;
                         });

}  // namespace
}  // namespace metallic
