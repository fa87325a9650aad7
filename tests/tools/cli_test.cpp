// The generating commands run as a user would: run, logits, chat, and their error exits.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_support.h"
#include "tool_runner.h"

namespace metallic {
namespace {

using test::last_line;
using test::run_tool;

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::getenv("METALLIC_TOOL")) GTEST_SKIP() << "METALLIC_TOOL is not set";
    std::ifstream in(test::shared_path("models/stories260K.reference.json"));
    reference = nlohmann::json::parse(in)["cases"][1];
  }
  static std::string stories() { return test::shared_path("models/stories260K.gguf").string(); }
  static std::string ids_text(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) {
      if (!s.empty()) s += ' ';
      s += std::to_string(id);
    }
    return s;
  }
  nlohmann::json reference;
};

TEST_F(Cli, RunPrintsGreedyIds) {
  const auto r = run_tool({"run", "-m", stories(), "--device", "cpu", "--prompt-ids",
                           ids_text(reference["prompt"].get<std::vector<int32_t>>()), "-n", "64", "--temp",
                           "0", "--ignore-eos", "--print-ids"});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(last_line(r.out)).get<std::vector<int32_t>>(),
            reference["greedy"].get<std::vector<int32_t>>());
}

TEST_F(Cli, RunStreamsTextAndReportsStats) {
  const std::vector<std::string> args = {"run",  "-m", stories(), "--device", "cpu", "-p",
                                         "Once", "-n", "8",       "--seed",   "5"};
  const auto text = run_tool(args);
  ASSERT_EQ(text.status, 0);
  EXPECT_EQ(text.out.rfind("Once", 0), 0u) << text.out;
  EXPECT_EQ(run_tool(args).out, text.out);  // same seed, same text
  const auto r = run_tool(args, "", true);
  EXPECT_NE(r.out.find("decode 8 tok"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("peak cpu memory"), std::string::npos) << r.out;
}

TEST_F(Cli, BuiltinModelRunsWithoutArguments) {
  const auto r = run_tool({"run", "--device", "cpu", "-n", "4"}, "", true);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("RANDOM weights"), std::string::npos) << r.out;
}

TEST_F(Cli, LogitsMatchTheReference) {
  const auto prompt = reference["prompt"].get<std::vector<int32_t>>();
  const auto r = run_tool({"logits", "-m", stories(), "--device", "cpu", "--ids", ids_text(prompt)});
  ASSERT_EQ(r.status, 0);
  const auto rows = nlohmann::json::parse(last_line(r.out))["logits"].get<std::vector<std::vector<float>>>();
  ASSERT_EQ(rows.size(), prompt.size());
  const auto want = reference["last_logits"].get<std::vector<float>>();
  EXPECT_TRUE(test::relative_l2(rows.back(), want) <= 1e-4);
}

TEST_F(Cli, ChatKeepsGoingUntilExit) {
  const auto r = run_tool({"chat", "-m", stories(), "--device", "cpu", "-n", "4", "--seed", "1"},
                          "hello\nhow are you\n/exit\n", true);
  ASSERT_EQ(r.status, 0) << r.out;
  // One statistics line per turn; the second turn reuses the cached first turn.
  size_t turns = 0;
  for (size_t at = 0; (at = r.out.find("decode ", at)) != std::string::npos; ++at) ++turns;
  EXPECT_EQ(turns, 2u) << r.out;
}

TEST_F(Cli, ErrorsExitNonZeroWithAMessage) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"run", "-m", "/nonexistent.gguf"},
        {"run", "-m", stories(), "--device", "cpu", "--ctx", "4", "-n", "16"},
        {"run", "-m", stories(), "--device", "cuda:99"},
        {"run", "-m", stories(), "--device", "metal"},
        {"logits", "-m", stories(), "--device", "cpu", "--ids", "1 x"},
        {"logits", "-m", stories(), "--device", "cpu", "--ids", "1 100000"},
        {"run", "-m", test::shared_path("tokenizers/gpt2-bpe/gpt2-bpe.vocab.gguf").string()},
        {"synth", "--preset", "qwen2.5-0.5b", "--type", "q4_0x8", "-o",
         "/tmp/metallic_never_written.gguf"}}) {
    const auto r = run_tool(args, "", true);
    EXPECT_NE(r.status, 0) << args[2];
    EXPECT_NE(r.out.find("error: "), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace metallic
