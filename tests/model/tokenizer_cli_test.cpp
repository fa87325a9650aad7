// The `metallic tokenize` / `detokenize` commands, run as a user would, against the shared fixtures.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_support.h"
#include "tool_runner.h"

namespace metallic {
namespace {

using test::last_line;
using test::run_tool;
using test::ToolRun;

nlohmann::json fixture_row(const std::string& relative, size_t index) {
  std::ifstream in(test::shared_path(relative));
  std::string line;
  for (size_t i = 0; i <= index; ++i) std::getline(in, line);
  return nlohmann::json::parse(line);
}

std::string vocab(const std::string& name) {
  return test::shared_path("tokenizers/" + name + "/" + name + ".vocab.gguf").string();
}

class TokenizeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::getenv("METALLIC_TOOL") == nullptr) GTEST_SKIP() << "METALLIC_TOOL is not set";
  }
};

TEST_F(TokenizeCli, PrintsReferenceIds) {
  for (const std::string name : {"llama2-spm", "qwen2-bpe", "gpt2-bpe"}) {
    // The empty text, a text starting with '-', plain prose, special tokens (plain text for Llama).
    for (const size_t index : {size_t{0}, size_t{21}, size_t{36}, size_t{99}}) {
      const auto row = fixture_row("tokenizers/" + name + "/cases.jsonl", index);
      const std::string text = row.at("text");
      nlohmann::json expected = row.at("ids");
      const ToolRun r = run_tool({"tokenize", "-m", vocab(name), "--no-bos", "--", text});
      ASSERT_EQ(r.status, 0) << name << " " << text;
      EXPECT_EQ(nlohmann::json::parse(last_line(r.out)), expected) << name << " " << text;
    }
  }
}

TEST_F(TokenizeCli, AddsBosWhenTheVocabularyAsks) {
  const auto row = fixture_row("tokenizers/llama2-spm/cases.jsonl", 21);
  nlohmann::json expected = nlohmann::json::array({1});
  for (const auto& id : row.at("ids")) expected.push_back(id);
  const ToolRun r = run_tool({"tokenize", "-m", vocab("llama2-spm"), "--pieces", row.at("text")});
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(nlohmann::json::parse(last_line(r.out)), expected);
  // The pieces come on the line before the ids.
  const std::string pieces_line = last_line(r.out.substr(0, r.out.rfind('\n', r.out.size() - 2)));
  nlohmann::json pieces = nlohmann::json::array({"<s>"});
  for (const auto& p : row.at("pieces")) pieces.push_back(p);
  EXPECT_EQ(nlohmann::json::parse(pieces_line), pieces);

  // Qwen2's vocabulary does not ask for BOS.
  const auto qwen = fixture_row("tokenizers/qwen2-bpe/cases.jsonl", 21);
  const ToolRun q = run_tool({"tokenize", "-m", vocab("qwen2-bpe"), qwen.at("text")});
  ASSERT_EQ(q.status, 0);
  EXPECT_EQ(nlohmann::json::parse(last_line(q.out)), qwen.at("ids"));
}

TEST_F(TokenizeCli, NoSpecialTreatsSpecialSpellingsAsText) {
  const auto row = fixture_row("tokenizers/qwen2-bpe/cases.jsonl", 99);
  const ToolRun r = run_tool({"tokenize", "-m", vocab("qwen2-bpe"), "--no-special", row.at("text")});
  ASSERT_EQ(r.status, 0);
  const auto ids = nlohmann::json::parse(last_line(r.out));
  ASSERT_GT(ids.size(), row.at("ids").size());
  for (const auto& id : ids) EXPECT_LT(id.get<int>(), 151643);  // 151643.. are the special tokens
}

TEST_F(TokenizeCli, DetokenizePrintsReferenceText) {
  for (const std::string name : {"llama2-spm", "gpt2-bpe"}) {
    const auto row = fixture_row("tokenizers/" + name + "/decode.jsonl", 0);
    std::vector<std::string> args{"detokenize", "-m", vocab(name)};
    for (const auto& id : row.at("ids")) args.push_back(std::to_string(id.get<int>()));
    const ToolRun r = run_tool(args);
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(r.out, row.at("text").get<std::string>() + "\n") << name;
  }
}

TEST_F(TokenizeCli, BadIdFailsWithMessage) {
  const ToolRun r = run_tool({"detokenize", "-m", vocab("gpt2-bpe"), "50257"});
  EXPECT_NE(r.status, 0);
}

}  // namespace
}  // namespace metallic
