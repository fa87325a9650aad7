#include "metallic/model/gguf.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "metallic/core/error.h"
#include "test_support.h"

namespace metallic::gguf {
namespace {

std::vector<uint8_t> read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

template <class T>
void poke(std::vector<uint8_t>& bytes, size_t at, T value) {
  ASSERT_LE(at + sizeof(T), bytes.size());
  std::memcpy(bytes.data() + at, &value, sizeof(T));
}

// Index just past the first occurrence of `text` (a key or tensor name) in `bytes`.
size_t after(const std::vector<uint8_t>& bytes, std::string_view text) {
  const auto it = std::search(bytes.begin(), bytes.end(), text.begin(), text.end());
  EXPECT_NE(it, bytes.end()) << text;
  return static_cast<size_t>(it - bytes.begin()) + text.size();
}

// Parsing `bytes` must fail with a Format error whose message contains `needle` and a byte position.
void expect_format(const std::vector<uint8_t>& bytes, const std::string& needle) {
  try {
    File::from_bytes(bytes);
    ADD_FAILURE() << "parsed a malformed file (expected '" << needle << "')";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Format) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// A small valid file whose layout the malformed-input tests patch. Tensor data: "tensor.q" (Q8_0, 34 bytes,
// padded to 64) at 0, "tensor.one" at 64, "tensor.two" at 96, ending exactly at the end of the file.
std::vector<uint8_t> small_file() {
  Writer w;
  w.add("general.architecture", "test");
  w.add("key.a1", uint32_t{7});
  w.add("key.a2", uint32_t{8});
  w.add("key.arr", std::vector<uint32_t>{1, 2, 3});
  w.add("key.flag", true);
  std::vector<uint8_t> q(34, 0x11);
  std::vector<float> one(8, 1.5f), two(8, -2.0f);
  w.add_tensor("tensor.q", DType::Q8_0, {32}, q.data(), q.size());
  w.add_tensor("tensor.one", DType::F32, {8}, one.data(), 32);
  w.add_tensor("tensor.two", DType::F32, {4, 2}, two.data(), 32);
  return w.to_bytes();
}

// Byte positions of the fields of tensor `name` in small_file().
struct TensorFields {
  size_t n_dims, dim0, type, offset;
};
TensorFields fields_of(const std::vector<uint8_t>& bytes, std::string_view name, uint32_t n_dims) {
  const size_t at = after(bytes, name);
  return {at, at + 4, at + 4 + 8 * n_dims, at + 4 + 8 * n_dims + 4};
}

TEST(GgufSmall, LayoutAsWritten) {
  const std::vector<uint8_t> bytes = small_file();
  const File f = File::from_bytes(bytes);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  EXPECT_EQ(f.data_offset() + 128, bytes.size());
  ASSERT_EQ(f.tensors().size(), 3u);
  const TensorInfo& q = f.tensor("tensor.q");
  EXPECT_EQ(q.dtype, DType::Q8_0);
  EXPECT_EQ(q.bytes, 34u);
  EXPECT_EQ(q.offset, 0u);
  EXPECT_EQ(q.data[0], 0x11);
  const TensorInfo& two = f.tensor("tensor.two");
  EXPECT_EQ(two.offset, 96u);
  EXPECT_EQ(two.dims, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(two.elements(), 8);
  float x;
  std::memcpy(&x, two.data + 28, 4);
  EXPECT_EQ(x, -2.0f);
  EXPECT_EQ(f.get_string("general.architecture"), "test");
  EXPECT_EQ(f.get_u32("key.a1"), 7u);
  EXPECT_EQ(f.get_int("key.a2"), 8);
  EXPECT_TRUE(f.get_bool("key.flag"));
  EXPECT_EQ(f.find_tensor("missing"), nullptr);
}

TEST(GgufMalformed, BadMagicAndVersion) {
  std::vector<uint8_t> b = small_file();
  b[0] = 'X';
  expect_format(b, "bad magic");
  for (uint32_t version : {0u, 1u, 4u, 99u}) {
    b = small_file();
    poke(b, 4, version);
    expect_format(b, "unsupported version");
  }
  b = small_file();
  poke(b, 4, uint32_t{0x03000000});
  expect_format(b, "big-endian");
}

TEST(GgufMalformed, TruncatedAtEveryByte) {
  const std::vector<uint8_t> full = small_file();
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    try {
      File::from_bytes(std::move(cut));
      ADD_FAILURE() << "truncation to " << n << " bytes parsed";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Format) << n << ": " << e.what();
    }
  }
}

// Overwriting any single byte with an extreme value either still parses (e.g. inside tensor data) or fails
// as a Format error; nothing else may escape.
TEST(GgufMalformed, EveryByteOverwritten) {
  const std::vector<uint8_t> full = small_file();
  for (size_t i = 0; i < full.size(); ++i) {
    for (uint8_t v : {uint8_t{0x00}, uint8_t{0x7f}, uint8_t{0xff}}) {
      std::vector<uint8_t> b = full;
      b[i] = v;
      try {
        File::from_bytes(std::move(b));
      } catch (const Error& e) {
        ASSERT_EQ(e.code(), ErrorCode::Format) << "byte " << i << " = " << int(v) << ": " << e.what();
      }
    }
  }
}

TEST(GgufMalformed, AbsurdCounts) {
  std::vector<uint8_t> b = small_file();
  poke(b, 16, uint64_t{1} << 60);
  expect_format(b, "metadata count");
  b = small_file();
  poke(b, 8, ~uint64_t{0});
  expect_format(b, "tensor count");
  b = small_file();
  poke(b, after(b, "key.arr") + 8, uint64_t{1} << 61);  // after the value type and the element type
  expect_format(b, "array of");
  b = small_file();
  // The string length of the first key sits at byte 24.
  poke(b, 24, uint64_t{1} << 40);
  expect_format(b, "string length");
  b = small_file();
  poke(b, after(b, "general.architecture") + 4, ~uint64_t{0});
  expect_format(b, "string length");
}

TEST(GgufMalformed, UnknownValueTypes) {
  std::vector<uint8_t> b = small_file();
  poke(b, after(b, "key.a1"), uint32_t{13});
  expect_format(b, "unknown value type 13");
  b = small_file();
  poke(b, after(b, "key.arr") + 4, uint32_t{77});
  expect_format(b, "unknown array element type 77");
  b = small_file();
  b[after(b, "key.flag") + 4] = 2;
  expect_format(b, "bool byte 2");
}

TEST(GgufMalformed, BadAlignment) {
  for (uint32_t alignment : {0u, 3u, 48u}) {
    Writer w;
    w.add("general.alignment", uint32_t{32});
    std::vector<uint8_t> b = w.to_bytes();
    poke(b, after(b, "general.alignment") + 4, alignment);
    expect_format(b, "general.alignment");
  }
  // A string-typed alignment: written under a stand-in key (the writer refuses it), then renamed.
  Writer w;
  w.add("general.alignmenX", "32");
  std::vector<uint8_t> b = w.to_bytes();
  b[after(b, "general.alignmenX") - 1] = 't';
  expect_format(b, "general.alignment");
}

TEST(GgufMalformed, TensorOffsets) {
  std::vector<uint8_t> b = small_file();
  poke(b, fields_of(b, "tensor.one", 1).offset, uint64_t{1} << 40);
  expect_format(b, "tensor 'tensor.one': data offset 1099511627776 past end of file");
  b = small_file();
  poke(b, fields_of(b, "tensor.two", 2).offset, uint64_t{128});
  expect_format(b, "past end of file");
  b = small_file();
  poke(b, fields_of(b, "tensor.two", 2).offset, uint64_t{64});
  expect_format(b, "overlaps tensor 'tensor.one'");
  b = small_file();
  poke(b, fields_of(b, "tensor.one", 1).offset, uint64_t{32});  // inside tensor.q's 34 bytes
  expect_format(b, "overlaps");
  b = small_file();
  poke(b, fields_of(b, "tensor.one", 1).offset, uint64_t{65});
  expect_format(b, "not a multiple of the alignment");
}

TEST(GgufMalformed, TensorTypesAndDims) {
  std::vector<uint8_t> b = small_file();
  poke(b, fields_of(b, "tensor.one", 1).type, uint32_t{4});  // a retired ggml type id
  expect_format(b, "unknown tensor type 4");
  b = small_file();
  poke(b, fields_of(b, "tensor.one", 1).type, uint32_t{0xffffffff});
  expect_format(b, "unknown tensor type");
  b = small_file();
  poke(b, fields_of(b, "tensor.one", 1).n_dims, uint32_t{5});
  expect_format(b, "n_dims 5");
  b = small_file();
  poke(b, fields_of(b, "tensor.one", 1).n_dims, uint32_t{0});
  expect_format(b, "n_dims 0");
  b = small_file();
  poke(b, fields_of(b, "tensor.one", 1).dim0, uint64_t{0});
  expect_format(b, "dim 0 = 0 is not positive");
  b = small_file();
  poke(b, fields_of(b, "tensor.two", 2).dim0 + 8, ~uint64_t{0});
  expect_format(b, "dim 1 = -1 is not positive");
  b = small_file();
  poke(b, fields_of(b, "tensor.two", 2).dim0, uint64_t{1} << 32);
  poke(b, fields_of(b, "tensor.two", 2).dim0 + 8, uint64_t{1} << 32);
  expect_format(b, "element count overflows");
  b = small_file();
  poke(b, fields_of(b, "tensor.two", 2).dim0, uint64_t{1} << 31);
  poke(b, fields_of(b, "tensor.two", 2).dim0 + 8, uint64_t{1} << 31);
  expect_format(b, "byte size overflows");
  b = small_file();
  poke(b, fields_of(b, "tensor.q", 1).dim0, uint64_t{33});
  expect_format(b, "not a multiple of the q8_0 block size 32");
}

TEST(GgufMalformed, Duplicates) {
  std::vector<uint8_t> b = small_file();
  b[after(b, "key.a2") - 1] = '1';
  expect_format(b, "duplicate metadata 'key.a1'");
  b = small_file();
  const size_t two = after(b, "tensor.two");
  std::memcpy(b.data() + two - 3, "one", 3);
  expect_format(b, "duplicate tensor 'tensor.one'");
}

TEST(GgufMalformed, DeepNesting) {
  Value v = std::vector<uint8_t>{1};
  for (int i = 0; i < 12; ++i) v = std::vector<Value>{v};
  Writer w;
  w.add("deep", v);
  expect_format(w.to_bytes(), "nested deeper");
}

TEST(Gguf, MissingFileIsIo) {
  for (const char* path : {"/nonexistent/dir/model.gguf", "/"}) {
    try {
      File::open(path);
      ADD_FAILURE() << "opened " << path;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Io) << e.what();
    }
  }
}

TEST(Gguf, AllValueTypesRoundTrip) {
  Writer w;
  w.add("u8", uint8_t{200});
  w.add("i8", int8_t{-100});
  w.add("u16", uint16_t{60000});
  w.add("i16", int16_t{-30000});
  w.add("u32", uint32_t{4000000000u});
  w.add("i32", int32_t{-2000000000});
  w.add("f32", 0.25f);
  w.add("bool", false);
  w.add("str", "h\xc3\xa9llo");
  w.add("u64", uint64_t{18000000000000000000ull});
  w.add("i64", int64_t{-9000000000000000000ll});
  w.add("f64", 1e300);
  w.add("a.u8", std::vector<uint8_t>{1, 2});
  w.add("a.i8", std::vector<int8_t>{-1});
  w.add("a.u16", std::vector<uint16_t>{});
  w.add("a.i16", std::vector<int16_t>{-5, 5});
  w.add("a.u32", std::vector<uint32_t>{9});
  w.add("a.i32", std::vector<int32_t>{1, 2, 3});
  w.add("a.f32", std::vector<float>{0.5f, -0.5f});
  w.add("a.bool", std::vector<bool>{true, false, true});
  w.add("a.str", std::vector<std::string>{"", "x", "yz"});
  w.add("a.u64", std::vector<uint64_t>{1ull << 63});
  w.add("a.i64", std::vector<int64_t>{-1});
  w.add("a.f64", std::vector<double>{2.5});
  w.add("a.arr", std::vector<Value>{std::vector<std::string>{"p", "q"}, std::vector<float>{1.0f},
                                    std::vector<Value>{}, std::vector<Value>{std::vector<int32_t>{4}}});
  const std::vector<uint8_t> bytes = w.to_bytes();
  const File f = File::from_bytes(bytes);
  ASSERT_EQ(f.metadata().size(), 25u);
  EXPECT_EQ(f.find("u8")->type(), ValueType::U8);
  EXPECT_EQ(*f.find("i8")->get_if<int8_t>(), -100);
  EXPECT_EQ(f.get_int("u16"), 60000);
  EXPECT_EQ(f.get_int("i16"), -30000);
  EXPECT_EQ(f.get_u32("u32"), 4000000000u);
  EXPECT_EQ(f.get_int("i32"), -2000000000);
  EXPECT_EQ(f.get_f32("f32"), 0.25f);
  EXPECT_FALSE(f.get_bool("bool"));
  EXPECT_EQ(f.get_string("str"), "h\xc3\xa9llo");
  EXPECT_EQ(*f.find("u64")->get_if<uint64_t>(), 18000000000000000000ull);
  EXPECT_EQ(f.get_int("i64"), -9000000000000000000ll);
  EXPECT_EQ(*f.find("f64")->get_if<double>(), 1e300);
  EXPECT_EQ(f.find("a.u16")->array_type(), ValueType::U16);
  EXPECT_EQ(f.find("a.u16")->array_size(), 0u);
  EXPECT_EQ(f.get_i32_array("a.i32"), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(f.get_f32_array("a.f32"), (std::vector<float>{0.5f, -0.5f}));
  EXPECT_EQ(*f.find("a.bool")->get_if<std::vector<bool>>(), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(f.get_string_array("a.str"), (std::vector<std::string>{"", "x", "yz"}));
  const Value* nested = f.find("a.arr");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->array_type(), ValueType::Array);
  EXPECT_EQ(nested->array_size(), 4u);
  const auto& inner = *nested->get_if<std::vector<Value>>();
  EXPECT_EQ(*inner[0].get_if<std::vector<std::string>>(), (std::vector<std::string>{"p", "q"}));
  EXPECT_EQ(inner[2].array_type(), ValueType::Array);
  EXPECT_EQ(inner[2].array_size(), 0u);
  EXPECT_EQ(*inner[3].get_if<std::vector<Value>>()->at(0).get_if<std::vector<int32_t>>(),
            (std::vector<int32_t>{4}));
  // Re-emitting what was read gives the same bytes.
  Writer again;
  for (const KeyValue& kv : f.metadata()) again.add(kv.key, kv.value);
  EXPECT_EQ(again.to_bytes(), bytes);
}

TEST(Gguf, GettersRejectWrongTypes) {
  Writer w;
  w.add("s", "text");
  w.add("big", uint64_t{1} << 63);
  w.add("neg", int32_t{-1});
  w.add("u", std::vector<uint32_t>{1});
  const File f = File::from_bytes(w.to_bytes());
  const auto code_of = [](auto&& call) {
    try {
      call();
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::Internal;
  };
  EXPECT_EQ(code_of([&] { f.get_int("s"); }), ErrorCode::Format);
  EXPECT_EQ(code_of([&] { f.get_int("big"); }), ErrorCode::Format);
  EXPECT_EQ(code_of([&] { f.get_u32("neg"); }), ErrorCode::Format);
  EXPECT_EQ(code_of([&] { f.get_string("neg"); }), ErrorCode::Format);
  EXPECT_EQ(code_of([&] { f.get_i32_array("u"); }), ErrorCode::Format);
  EXPECT_EQ(code_of([&] { f.get_string("absent"); }), ErrorCode::Format);
  EXPECT_EQ(code_of([&] { f.tensor("absent"); }), ErrorCode::Format);
  EXPECT_EQ(f.get_int("neg"), -1);
  EXPECT_EQ(f.get_u32("absent", 5), 5u);
  EXPECT_EQ(f.get_string("absent", "fallback"), "fallback");
  EXPECT_EQ(code_of([&] { f.get_bool("s", true); }), ErrorCode::Format);
}

TEST(Gguf, SizedOnlyTypesLoad) {
  Writer w;
  for (DType dt : {DType::IQ2_XXS, DType::IQ4_NL, DType::TQ1_0, DType::MXFP4, DType::Q2_K}) {
    const int64_t n = info(dt).block_size * 2;
    std::vector<uint8_t> data(static_cast<size_t>(storage_bytes(dt, n)), 0x5a);
    w.add_tensor(std::string(name(dt)), dt, {n}, data.data(), data.size());
  }
  const File f = File::from_bytes(w.to_bytes());
  ASSERT_EQ(f.tensors().size(), 5u);
  EXPECT_EQ(f.tensor("iq2_xxs").bytes, 2u * 66);
  EXPECT_EQ(f.tensor("mxfp4").bytes, 2u * 17);
  EXPECT_EQ(f.tensor("tq1_0").dtype, DType::TQ1_0);
}

TEST(GgufWriter, RejectsBadTensors) {
  Writer w;
  std::vector<uint8_t> data(64);
  EXPECT_THROW(w.add_tensor("x", DType::F32, {8}, data.data(), 30), Error);
  EXPECT_THROW(w.add_tensor("x", DType::F32, {}, data.data(), 0), Error);
  EXPECT_THROW(w.add_tensor("x", DType::Q8_0, {16}, data.data(), 17), Error);
  w.add_tensor("x", DType::F32, {16}, data.data(), 64);
  EXPECT_THROW(w.add_tensor("x", DType::F32, {16}, data.data(), 64), Error);
  w.add("k", 1.0f);
  EXPECT_THROW(w.add("k", 2.0f), Error);
}

// --- the shared fixtures -------------------------------------------------------------------------------

TEST(GgufFixtures, Stories260K) {
  const File f = File::open(test::shared_path("models/stories260K.gguf").string());
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_u32("llama.vocab_size"), 512u);
  EXPECT_EQ(f.get_u32("llama.attention.head_count"), 8u);
  EXPECT_EQ(f.get_u32("llama.attention.head_count_kv"), 4u);
  EXPECT_FLOAT_EQ(f.get_f32("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_FLOAT_EQ(f.get_f32("llama.rope.freq_base"), 10000.0f);
  const auto& tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 512u);
  EXPECT_EQ(tokens[0], "<unk>");
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(tokens[2], "</s>");
  EXPECT_EQ(tokens[3], "<0x00>");
  EXPECT_EQ(tokens[258], "<0xFF>");
  EXPECT_EQ(tokens[259], "tok259");
  EXPECT_EQ(f.get_f32_array("tokenizer.ggml.scores").size(), 512u);
  const auto& types = f.get_i32_array("tokenizer.ggml.token_type");
  EXPECT_EQ(types[1], 3);
  EXPECT_EQ(types[3], 6);
  // Tied classifier: token embedding, final norm, and nine tensors per layer.
  const uint32_t layers = f.get_u32("llama.block_count");
  EXPECT_EQ(f.tensors().size(), 2u + 9u * layers);
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
  const TensorInfo& embd = f.tensor("token_embd.weight");
  EXPECT_EQ(embd.dtype, DType::F32);
  EXPECT_EQ(embd.dims, (std::vector<int64_t>{64, 512}));
  const TensorInfo& k = f.tensor("blk.0.attn_k.weight");
  EXPECT_EQ(k.dims, (std::vector<int64_t>{64, 32}));  // 4 kv heads of 8
  for (const TensorInfo& t : f.tensors()) {
    EXPECT_EQ(t.dtype, DType::F32) << t.name;
    EXPECT_EQ(t.bytes, static_cast<uint64_t>(t.elements()) * 4) << t.name;
    EXPECT_LE(f.data_offset() + t.offset + t.bytes, f.file_size()) << t.name;
  }
}

TEST(GgufFixtures, Qwen2Tiny) {
  const File f32 = File::open(test::shared_path("models/qwen2-tiny/qwen2-tiny-tied-f32.gguf").string());
  const File q8 = File::open(test::shared_path("models/qwen2-tiny/qwen2-tiny-tied-q8_0.gguf").string());
  for (const File* f : {&f32, &q8}) {
    EXPECT_EQ(f->get_string("general.architecture"), "qwen2");
    EXPECT_EQ(f->get_u32("qwen2.embedding_length"), 64u);
    EXPECT_EQ(f->get_u32("qwen2.block_count"), 2u);
    EXPECT_EQ(f->get_u32("qwen2.attention.head_count"), 4u);
    EXPECT_EQ(f->get_u32("qwen2.attention.head_count_kv"), 2u);
    EXPECT_EQ(f->get_u32("qwen2.feed_forward_length"), 128u);
    EXPECT_FLOAT_EQ(f->get_f32("qwen2.rope.freq_base"), 1e6f);
    EXPECT_FLOAT_EQ(f->get_f32("qwen2.attention.layer_norm_rms_epsilon"), 1e-6f);
    const auto& tokens = f->get_string_array("tokenizer.ggml.tokens");
    ASSERT_EQ(tokens.size(), 512u);
    EXPECT_EQ(tokens[511], "<|endoftext|>");
    EXPECT_EQ(tokens[510], "tok510");
    EXPECT_EQ(f->get_i32_array("tokenizer.ggml.token_type")[511], 3);
    EXPECT_TRUE(f->get_string_array("tokenizer.ggml.merges").empty());
    EXPECT_EQ(f->get_u32("tokenizer.ggml.bos_token_id"), 511u);
    // Tied: embedding + final norm + 12 per layer (4 norms/attn weights, 3 biases, 3 ffn, 2 norms).
    EXPECT_EQ(f->tensors().size(), 2u + 2u * 12u);
    EXPECT_EQ(f->find_tensor("output.weight"), nullptr);
    EXPECT_EQ(f->tensor("token_embd.weight").dims, (std::vector<int64_t>{64, 512}));
    EXPECT_EQ(f->tensor("blk.1.attn_k.bias").dims, (std::vector<int64_t>{32}));
    EXPECT_EQ(f->tensor("blk.0.ffn_down.weight").dims, (std::vector<int64_t>{128, 64}));
  }
  for (const TensorInfo& t : q8.tensors()) {
    const bool matrix = t.dims.size() == 2;
    EXPECT_EQ(t.dtype, matrix ? DType::Q8_0 : DType::F32) << t.name;
    EXPECT_EQ(t.bytes, matrix ? static_cast<uint64_t>(t.elements()) / 32 * 34 : t.elements() * 4u) << t.name;
    EXPECT_EQ(f32.tensor(t.name).dims, t.dims);
  }
  // Norms and biases are stored unquantized in both files, so their bytes agree.
  const TensorInfo& a = f32.tensor("blk.0.attn_q.bias");
  const TensorInfo& b = q8.tensor("blk.0.attn_q.bias");
  EXPECT_EQ(std::memcmp(a.data, b.data, a.bytes), 0);
}

TEST(GgufFixtures, Vocabularies) {
  const File spm = File::open(test::shared_path("tokenizers/llama2-spm/llama2-spm.vocab.gguf").string());
  EXPECT_EQ(spm.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(spm.get_string_array("tokenizer.ggml.tokens").size(), 32000u);
  EXPECT_EQ(spm.get_f32_array("tokenizer.ggml.scores").size(), 32000u);
  EXPECT_TRUE(spm.get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_TRUE(spm.tensors().empty());

  const File qwen = File::open(test::shared_path("tokenizers/qwen2-bpe/qwen2-bpe.vocab.gguf").string());
  EXPECT_EQ(qwen.get_string("tokenizer.ggml.pre"), "qwen2");
  const auto& qtokens = qwen.get_string_array("tokenizer.ggml.tokens");
  ASSERT_GE(qtokens.size(), 151646u);
  EXPECT_EQ(qtokens[151643], "<|endoftext|>");
  EXPECT_EQ(qtokens[151644], "<|im_start|>");
  EXPECT_EQ(qtokens[151645], "<|im_end|>");
  EXPECT_EQ(qwen.get_string_array("tokenizer.ggml.merges").size(), 151387u);
  EXPECT_EQ(qwen.find("tokenizer.ggml.scores"), nullptr);

  const File gpt2 = File::open(test::shared_path("tokenizers/gpt2-bpe/gpt2-bpe.vocab.gguf").string());
  EXPECT_EQ(gpt2.get_string("tokenizer.ggml.pre"), "gpt-2");
  const auto& gtokens = gpt2.get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(gtokens.size(), 50257u);
  EXPECT_EQ(gtokens[50256], "<|endoftext|>");
  EXPECT_EQ(gpt2.get_string_array("tokenizer.ggml.merges").size(), 50000u);
  EXPECT_EQ(gpt2.get_u32("tokenizer.ggml.eos_token_id"), 50256u);
}

// Every shared .gguf, read and written back with the same metadata (in order) and tensors, reproduces the
// original bytes: the fixtures use the standard layout (packed offsets, zero padding after each tensor).
TEST(GgufFixtures, WriterReproducesEveryFile) {
  size_t files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(test::shared_path(""))) {
    if (entry.path().extension() != ".gguf") continue;
    SCOPED_TRACE(entry.path().string());
    ++files;
    const File f = File::open(entry.path().string());
    Writer w;
    for (const KeyValue& kv : f.metadata()) w.add(kv.key, kv.value);
    for (const TensorInfo& t : f.tensors()) w.add_tensor(t.name, t.dtype, t.dims, t.data, t.bytes);
    const std::vector<uint8_t> written = w.to_bytes();
    const std::vector<uint8_t> original = read_all(entry.path());
    ASSERT_EQ(written.size(), original.size());
    EXPECT_TRUE(written == original);
  }
  EXPECT_GE(files, 6u);
}

TEST(GgufWriter, WritesFiles) {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / "metallic_gguf_writer_test.gguf";
  Writer w;
  w.add("general.alignment", uint32_t{64});
  std::vector<float> data(16, 3.0f);
  w.add_tensor("a", DType::F32, {16}, data.data(), 64);
  w.add_tensor("b", DType::F32, {4, 4}, data.data(), 64);
  w.write(path.string());
  const File f = File::open(path.string());
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.tensor("b").offset, 64u);
  EXPECT_EQ(read_all(path), w.to_bytes());
  std::filesystem::remove(path);
}

// `metallic inspect` prints the header, summarised arrays and the tensor table; bad files exit non-zero.
std::string run_tool(const std::string& args, int& status) {
  const char* tool = std::getenv("METALLIC_TOOL");
  std::string out;
  if (!tool) return out;
  std::FILE* pipe = popen((std::string(tool) + " " + args + " 2>&1").c_str(), "r");
  if (!pipe) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  status = pclose(pipe);
  return out;
}

TEST(GgufInspect, PrintsSummary) {
  if (!std::getenv("METALLIC_TOOL")) GTEST_SKIP() << "METALLIC_TOOL not set";
  int status = -1;
  const std::string path = test::shared_path("models/qwen2-tiny/qwen2-tiny-tied-q8_0.gguf").string();
  const std::string out = run_tool("inspect " + path, status);
  EXPECT_EQ(status, 0) << out;
  for (const char* needle : {"version: 3", "alignment: 32", "[string x 512]", "[i32 x 512]", "tensors (26)",
                             "token_embd.weight", "q8_0", "[64, 512]", "34816"})
    EXPECT_NE(out.find(needle), std::string::npos) << needle << "\n" << out;
  const std::string bad = run_tool("inspect /nonexistent/file.gguf", status);
  EXPECT_NE(status, 0);
  EXPECT_EQ(bad.rfind("error: ", 0), 0u) << bad;
}

}  // namespace
}  // namespace metallic::gguf
