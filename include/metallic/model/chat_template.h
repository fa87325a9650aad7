// Rendering a conversation in the prompt format a model was trained on.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "metallic/model/config.h"
#include "metallic/model/gguf.h"

namespace metallic {

/// The prompt formats the engine renders natively.
enum class ChatStyle {
  ChatML,  ///< <|im_start|>role\n...<|im_end|> (Qwen2)
  Llama3,  ///< <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
  Llama2,  ///< [INST] <<SYS>>...<</SYS>> ... [/INST]
};

/// One turn of a conversation; role is "system", "user" or "assistant".
struct ChatMessage {
  std::string role;
  std::string content;
};

/// A chat format: the style plus the default system prompt the model's template injects (may be empty).
struct ChatTemplate {
  ChatStyle style = ChatStyle::ChatML;
  std::string default_system;

  /// Recognises the style of the file's tokenizer.chat_template; without one, ChatML for Qwen2 and Llama 2
  /// style for Llama. A template in none of the three styles raises NotSupported.
  static ChatTemplate from_gguf(const gguf::File& file, Architecture architecture);
  /// The prompt text for `messages` (special tokens written as text, BOS left to the tokenizer), ending with
  /// the opening of an assistant turn when `add_generation_prompt`. Unknown roles raise InvalidArgument.
  std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  /// Texts of the special tokens that end an assistant turn in this style.
  std::vector<std::string> end_of_turn_tokens() const;
};

}  // namespace metallic
