#include "metallic/model/chat_template.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace metallic {
namespace {

gguf::File file_with_template(const std::string& source) {
  gguf::Writer w;
  w.add("general.architecture", "llama");
  if (!source.empty()) w.add("tokenizer.chat_template", source);
  return gguf::File::from_bytes(w.to_bytes());
}

const std::vector<ChatMessage> kConversation = {
    {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Tell me a joke"}};

TEST(ChatTemplate, ChatMLWithTheTemplatesDefaultSystem) {
  const ChatTemplate t = ChatTemplate::from_gguf(
      file_with_template(
          "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}"
          "{% if loop.first and message['role'] != 'system' %}You are a helpful assistant.{% endif %}"),
      Architecture::Qwen2);
  EXPECT_EQ(t.style, ChatStyle::ChatML);
  EXPECT_EQ(t.render(kConversation, true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nTell me a joke<|im_end|>\n"
            "<|im_start|>assistant\n");
  const std::vector<ChatMessage> with_system = {{"system", "Be brief."}, {"user", "Hi"}};
  EXPECT_EQ(t.render(with_system, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
}

TEST(ChatTemplate, Llama3) {
  const ChatTemplate t = ChatTemplate::from_gguf(
      file_with_template("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"),
      Architecture::Llama);
  EXPECT_EQ(t.style, ChatStyle::Llama3);
  EXPECT_EQ(
      t.render(std::vector<ChatMessage>{{"system", "S"}, {"user", "Hi"}}, true),
      "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
      "Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(t.end_of_turn_tokens().front(), "<|eot_id|>");
}

TEST(ChatTemplate, Llama2FoldsTheSystemPromptIntoTheFirstTurn) {
  const ChatTemplate t = ChatTemplate::from_gguf(file_with_template("{{ bos_token + '[INST] ' + content }}"),
                                                 Architecture::Llama);
  EXPECT_EQ(t.style, ChatStyle::Llama2);
  std::vector<ChatMessage> m = {{"system", "Be kind."}};
  m.insert(m.end(), kConversation.begin(), kConversation.end());
  EXPECT_EQ(t.render(m, true),
            "[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Tell me a joke [/INST]");
}

TEST(ChatTemplate, DefaultsAndErrors) {
  EXPECT_EQ(ChatTemplate::from_gguf(file_with_template(""), Architecture::Qwen2).style, ChatStyle::ChatML);
  EXPECT_EQ(ChatTemplate::from_gguf(file_with_template(""), Architecture::Llama).style, ChatStyle::Llama2);
  EXPECT_METALLIC_ERROR(ChatTemplate::from_gguf(file_with_template("{{ messages }}"), Architecture::Llama),
                        ErrorCode::NotSupported);
  const ChatTemplate t;
  EXPECT_METALLIC_ERROR(t.render(std::vector<ChatMessage>{{"robot", "x"}}, true), ErrorCode::InvalidArgument);
}

}  // namespace
}  // namespace metallic
