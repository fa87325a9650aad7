// The tokenizer on small hand-made vocabularies, where every expected id follows from the rules by hand:
// merge order, byte fallback, special-token matching, ill-formed input, streaming and error reporting.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "metallic/core/error.h"
#include "metallic/model/gguf.h"
#include "metallic/model/tokenizer.h"
#include "test_support.h"

namespace metallic {
namespace {

constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUser = 4, kByte = 6;

std::string hex_byte(int b) {
  const char* digits = "0123456789ABCDEF";
  return std::string("<0x") + digits[b >> 4] + digits[b & 15] + ">";
}

// <unk> <s> </s>, then the 256 byte tokens (ids 3..258), then `pieces` from id 259 on.
Vocabulary spm_vocab(const std::vector<std::pair<std::string, float>>& pieces, bool byte_tokens = true) {
  Vocabulary v;
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {kUnknown, kControl, kControl};
  v.scores = {0, 0, 0};
  for (int b = 0; b < 256 && byte_tokens; ++b) {
    v.tokens.push_back(hex_byte(b));
    v.types.push_back(kByte);
    v.scores.push_back(0);
  }
  for (const auto& [text, score] : pieces) {
    v.tokens.push_back(text);
    v.types.push_back(kNormal);
    v.scores.push_back(score);
  }
  v.unk = 0;
  v.bos = 1;
  v.eos = 2;
  return v;
}

int32_t id_of(const Tokenizer& tok, const std::string& piece) {
  for (int32_t id = 0; id < tok.size(); ++id) {
    if (tok.piece(id) == piece) return id;
  }
  ADD_FAILURE() << "no piece " << piece;
  return -1;
}

std::vector<int32_t> ids_of(const Tokenizer& tok, const std::vector<std::string>& pieces) {
  std::vector<int32_t> ids;
  for (const auto& p : pieces) ids.push_back(id_of(tok, p));
  return ids;
}

TEST(SpmTokenizer, MergesHighestScoreFirst) {
  const Tokenizer tok(spm_vocab({{"a", -10}, {"b", -10}, {"c", -10}, {"aa", -3}, {"ab", -1}, {"bc", -2}}));
  EXPECT_EQ(tok.encode("abc", false, true), ids_of(tok, {"ab", "c"}));  // ab (-1) beats bc (-2)
  EXPECT_EQ(tok.encode("aab", false, true), ids_of(tok, {"a", "ab"}));  // ab (-1) beats aa (-3)
  EXPECT_EQ(tok.encode("aaa", false, true), ids_of(tok, {"aa", "a"}));  // equal scores: leftmost first
}

TEST(SpmTokenizer, MergesAcrossWordStartsWhenThePiecesAllowIt) {
  const std::string mark = "\xE2\x96\x81";
  // Usual vocabularies have "▁" only at the start of a piece (or in runs of "▁"), so words never merge.
  const Tokenizer words(spm_vocab({{"a", -9}, {"b", -9}, {mark, -9}, {mark + mark, -1}, {mark + "b", -2}}));
  EXPECT_EQ(words.encode("a  b", false, true), ids_of(words, {"a", mark + mark, "b"}));
  // With a piece "a▁" the merge may cross into the next word.
  const Tokenizer joined(spm_vocab({{"a", -9}, {"b", -9}, {mark, -9}, {"a" + mark, -1}, {mark + "b", -2}}));
  EXPECT_EQ(joined.encode("a b", false, true), ids_of(joined, {"a" + mark, "b"}));
}

TEST(SpmTokenizer, ByteFallbackForUnknownCharactersAndIllFormedBytes) {
  const Tokenizer tok(spm_vocab({{"a", -1}}));
  // "é" (C3 A9) is no piece: its bytes go out as byte tokens, ids 3 + byte.
  EXPECT_EQ(tok.encode("a\xC3\xA9", false, true),
            (std::vector<int32_t>{id_of(tok, "a"), 3 + 0xC3, 3 + 0xA9}));
  // A lone lead byte is a unit of its own and does not swallow the following "a".
  EXPECT_EQ(tok.encode("\xE4"
                       "a",
                       false, true),
            (std::vector<int32_t>{3 + 0xE4, id_of(tok, "a")}));
  EXPECT_EQ(tok.encode(std::string("\0a", 2), false, true), (std::vector<int32_t>{3, id_of(tok, "a")}));

  // Without byte tokens the unknown token stands in, once per byte.
  const Tokenizer no_bytes(spm_vocab({{"a", -1}}, false));
  EXPECT_EQ(no_bytes.encode("\xC3\xA9"
                            "a",
                            false, true),
            (std::vector<int32_t>{0, 0, id_of(no_bytes, "a")}));
}

TEST(SpmTokenizer, DummyPrefixAndSpaces) {
  Vocabulary v = spm_vocab({{"\xE2\x96\x81", -5},
                            {"a", -4},
                            {"\xE2\x96\x81"
                             "a",
                             -1}});
  v.add_space_prefix = true;
  v.add_bos = true;
  const Tokenizer tok(std::move(v));
  const int32_t space = id_of(tok, "\xE2\x96\x81"), space_a = id_of(tok,
                                                                    "\xE2\x96\x81"
                                                                    "a");
  EXPECT_EQ(tok.encode("a a", true, true), (std::vector<int32_t>{1, space_a, space_a}));
  EXPECT_EQ(tok.encode("", true, true), (std::vector<int32_t>{1}));
  EXPECT_EQ(tok.encode("", false, true), (std::vector<int32_t>{}));
  // After a special token the text gets a dummy prefix again.
  EXPECT_EQ(tok.encode("a</s>a", false, true), (std::vector<int32_t>{space_a, 2, space_a}));
  // Decoding drops exactly one leading space, after any invisible control tokens.
  EXPECT_EQ(tok.decode(std::vector<int32_t>{1, space_a, space, space_a}), "a  a");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{space, space_a}), " a");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{0, space_a}), " \xE2\x81\x87  a");
  // Bad byte runs give one U+FFFD per byte.
  EXPECT_EQ(tok.decode(std::vector<int32_t>{3 + 0xE4, 3 + 0xB8, space_a}), "\xEF\xBF\xBD\xEF\xBF\xBD a");
}

TEST(SpecialTokens, LongestSpellingWinsAndParseSpecialOff) {
  Vocabulary v = spm_vocab({{"x", -1}, {"<", -9}, {">", -9}, {"|", -9}, {"s", -9}});
  v.tokens.push_back("<|s|>");
  v.types.push_back(kControl);
  v.scores.push_back(0);
  v.tokens.push_back("<|s|>x");
  v.types.push_back(kUser);
  v.scores.push_back(0);
  const auto n = static_cast<int32_t>(v.tokens.size());
  const Tokenizer tok(std::move(v));
  EXPECT_EQ(tok.encode("<|s|>x<|s|>", false, true), (std::vector<int32_t>{n - 1, n - 2}));
  EXPECT_EQ(tok.encode("<|s|><|s|>", false, true), (std::vector<int32_t>{n - 2, n - 2}));
  EXPECT_EQ(tok.encode("<|s|>", false, false), ids_of(tok, {"<", "|", "s", "|", ">"}));
}

// A byte-level vocabulary: the 256 byte characters (id = byte value), then merged pieces from id 256.
Vocabulary bpe_vocab(const std::vector<std::string>& merges, const std::vector<std::string>& extra) {
  Vocabulary v;
  v.model = "gpt2";
  v.pre = "gpt-2";
  // GPT-2's alphabet: printable bytes as themselves, the other 68 as U+0100.. in byte order.
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    const int cp = printable ? b : next++;
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    v.tokens.push_back(s);
  }
  for (const auto& e : extra) v.tokens.push_back(e);
  v.types.assign(v.tokens.size(), kNormal);
  v.merges = merges;
  return v;
}

TEST(BpeTokenizer, MergesByRank) {
  const Tokenizer tok(bpe_vocab({"b c", "a b"}, {"bc", "ab"}));
  EXPECT_EQ(tok.encode("abc", false, true), (std::vector<int32_t>{'a', 256}));  // "b c" ranks first
  const Tokenizer other(bpe_vocab({"a b", "b c"}, {"ab", "bc"}));
  EXPECT_EQ(other.encode("abc", false, true), (std::vector<int32_t>{256, 'c'}));
  // Merges never cross pre-token boundaries: " ab" and "bc" are separate words.
  EXPECT_EQ(other.encode("ab bc", false, true), (std::vector<int32_t>{256, ' ', 257}));
}

TEST(BpeTokenizer, IllFormedBytesBecomeByteTokens) {
  const Tokenizer tok(bpe_vocab({"a b"}, {"ab"}));
  // Each byte of an ill-formed sequence is its own word; the valid text around it is still merged.
  EXPECT_EQ(tok.encode("ab\xFF"
                       "ab",
                       false, true),
            (std::vector<int32_t>{256, 0xFF, 256}));
  EXPECT_EQ(tok.decode(std::vector<int32_t>{256, 0xFF}), "ab\xEF\xBF\xBD");
  // An incomplete character counts once, as in Python's and Rust's lossy UTF-8 decoding.
  EXPECT_EQ(tok.decode(std::vector<int32_t>{tok.encode("\xF0\x9F\x98", false, true)}), "\xEF\xBF\xBD");
}

TEST(StreamDecoder, HoldsBackPartialCharacters) {
  const Tokenizer tok(spm_vocab({{"a", -1}}));
  StreamDecoder stream(tok);
  EXPECT_EQ(stream.feed(3 + 0xE4), "");
  EXPECT_EQ(stream.feed(3 + 0xB8), "");
  EXPECT_EQ(stream.feed(3 + 0xAD), "\xE4\xB8\xAD");
  EXPECT_EQ(stream.feed(3 + 0xFF), "\xEF\xBF\xBD");  // can never start a character
  EXPECT_EQ(stream.feed(3 + 0xE4), "");
  EXPECT_EQ(stream.feed(id_of(tok, "a")),
            "\xEF\xBF\xBD"
            "a");                 // broken off by "a"
  EXPECT_EQ(stream.feed(1), "");  // control: nothing
  EXPECT_EQ(stream.feed(3 + 0xF0), "");
  EXPECT_THROW(stream.feed(tok.size()), Error);
  EXPECT_EQ(stream.feed(3 + 0x9F), "");
  EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(stream.flush(), "");
}

TEST(Tokenizer, InvalidIdsAreInvalidArguments) {
  const Tokenizer tok(spm_vocab({{"a", -1}}));
  for (const int32_t bad : {-1, tok.size(), INT32_MAX}) {
    try {
      (void)tok.decode(std::vector<int32_t>{bad});
      ADD_FAILURE() << "decode accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    }
    EXPECT_THROW((void)tok.piece(bad), Error);
    EXPECT_THROW((void)tok.token_bytes(bad), Error);
  }
}

std::vector<uint8_t> gguf_image(const Vocabulary& v, const std::string& skip = "") {
  gguf::Writer w;
  const auto add = [&](const std::string& key, gguf::Value value) {
    if (key != skip) w.add(key, std::move(value));
  };
  add("tokenizer.ggml.model", v.model);
  add("tokenizer.ggml.pre", v.pre);
  add("tokenizer.ggml.tokens", v.tokens);
  if (!v.scores.empty()) add("tokenizer.ggml.scores", v.scores);
  add("tokenizer.ggml.token_type", v.types);
  if (v.model == "gpt2") add("tokenizer.ggml.merges", v.merges);
  if (v.bos) add("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(*v.bos));
  return w.to_bytes();
}

void expect_format_error(const Vocabulary& v, const std::string& key, const std::string& skip = "",
                         ErrorCode code = ErrorCode::Format) {
  try {
    (void)Tokenizer(vocabulary_from_gguf(gguf::File::from_bytes(gguf_image(v, skip))));
    ADD_FAILURE() << "accepted a vocabulary with a bad " << key;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
  }
}

TEST(VocabularyFromGguf, RoundTripsAndRejectsInconsistentKeys) {
  const Vocabulary good = spm_vocab({{"a", -1}});
  const Vocabulary loaded = vocabulary_from_gguf(gguf::File::from_bytes(gguf_image(good)));
  EXPECT_EQ(loaded.tokens, good.tokens);
  EXPECT_EQ(loaded.bos, good.bos);
  EXPECT_TRUE(loaded.add_bos);           // SentencePiece vocabularies default to BOS
  EXPECT_TRUE(loaded.add_space_prefix);  // and to the dummy prefix

  expect_format_error(good, "tokenizer.ggml.tokens", "tokenizer.ggml.tokens");
  expect_format_error(good, "tokenizer.ggml.scores", "tokenizer.ggml.scores");
  Vocabulary v = good;
  v.scores.pop_back();
  expect_format_error(v, "tokenizer.ggml.scores");
  v = good;
  v.types.push_back(kNormal);
  expect_format_error(v, "tokenizer.ggml.token_type");
  v = good;
  v.types[5] = 9;
  expect_format_error(v, "tokenizer.ggml.token_type");
  v = good;
  v.bos = static_cast<int32_t>(v.tokens.size());
  expect_format_error(v, "tokenizer.ggml.bos_token_id");
  v = good;
  v.model = "bert";
  expect_format_error(v, "tokenizer.ggml.model", "", ErrorCode::NotSupported);

  Vocabulary b = bpe_vocab({"a b"}, {"ab"});
  EXPECT_NO_THROW(Tokenizer(vocabulary_from_gguf(gguf::File::from_bytes(gguf_image(b)))));
  expect_format_error(b, "tokenizer.ggml.merges", "tokenizer.ggml.merges");
  b.merges = {"a q"};  // "aq" is no token
  expect_format_error(b, "tokenizer.ggml.merges");
  b.merges = {"ab"};
  expect_format_error(b, "tokenizer.ggml.merges");
  b = bpe_vocab({}, {});
  b.pre = "no-such-pre";
  expect_format_error(b, "no-such-pre", "", ErrorCode::NotSupported);
}

TEST(VocabularyFromGguf, SentencePieceNeedsByteTokensOrUnknown) {
  Vocabulary v = spm_vocab({{"a", -1}}, false);
  v.unk.reset();
  try {
    (void)Tokenizer(std::move(v));
    ADD_FAILURE() << "accepted a vocabulary that cannot encode every byte";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Format);
    EXPECT_NE(std::string(e.what()).find("<0x00>"), std::string::npos) << e.what();
  }
}

// The placeholder vocabularies of the model fixtures, whose layout the fixture README spells out.
TEST(ModelVocabularies, PlaceholderVocabulariesEncodeThroughBytes) {
  const Tokenizer stories(
      vocabulary_from_gguf(gguf::File::open(test::shared_path("models/stories260K.gguf").string())));
  ASSERT_EQ(stories.size(), 512);
  // "hi" becomes "▁hi" (E2 96 81 68 69); no piece matches, so all five bytes use <0xNN> = id 3 + byte.
  EXPECT_EQ(stories.encode("hi", true, true),
            (std::vector<int32_t>{1, 3 + 0xE2, 3 + 0x96, 3 + 0x81, 3 + 0x68, 3 + 0x69}));
  // Byte pieces decode to their raw bytes, so the escaped space stays a "▁" (as in SentencePiece).
  EXPECT_EQ(stories.decode(std::vector<int32_t>{1, 3 + 0xE2, 3 + 0x96, 3 + 0x81, 3 + 0x68, 3 + 0x69}),
            "\xE2\x96\x81hi");

  const Tokenizer qwen(vocabulary_from_gguf(
      gguf::File::open(test::shared_path("models/qwen2-tiny/qwen2-tiny-tied-f32.gguf").string())));
  ASSERT_EQ(qwen.size(), 512);
  // No merges: one token per byte, in GPT-2's byte order ('!' = 0, so 'h' = 104 - 33).
  EXPECT_EQ(qwen.encode("hi<|endoftext|>", false, true), (std::vector<int32_t>{71, 72, 511}));
  EXPECT_EQ(qwen.decode(std::vector<int32_t>{71, 72, 511}, true), "hi");
}

// The fixture vocabulary under stress: long words and runs, and several threads sharing the word cache.
TEST(BpeTokenizer, LongInputsAndConcurrentCallers) {
  const auto path = test::shared_path("tokenizers/gpt2-bpe/gpt2-bpe.vocab.gguf");
  const Tokenizer tok(vocabulary_from_gguf(gguf::File::open(path.string())));
  for (const std::string unit : {"a", " ", "\n", "1", "!", "\xC3\xA9", "\xFF"}) {
    std::string text;
    while (text.size() < (1u << 18)) text += unit;
    const std::vector<int32_t> ids = tok.encode(text, false, true);
    EXPECT_FALSE(ids.empty());
    if (unit != "\xFF") {
      EXPECT_EQ(tok.decode(ids), text);
    }
  }
  // "Hello world" is [15496, 995] in GPT-2 (the fixture's decode cases).
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string text = "Hello world" + std::string(i % 7, '!') + " Hello world";
        const auto ids = tok.encode(text, false, true);
        if (ids.size() < 4 || ids[0] != 15496 || ids[1] != 995) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace metallic
