#include "metallic/model/chat_template.h"

#include "metallic/core/error.h"

namespace metallic {
namespace {

bool contains(const std::string& text, const char* needle) { return text.find(needle) != std::string::npos; }

void check_role(const ChatMessage& m) {
  check(m.role == "system" || m.role == "user" || m.role == "assistant", ErrorCode::InvalidArgument,
        "chat: unknown role '", m.role, "' (system, user or assistant)");
}

}  // namespace

ChatTemplate ChatTemplate::from_gguf(const gguf::File& file, Architecture architecture) {
  const std::string source = file.get_string("tokenizer.chat_template", "");
  ChatTemplate t;
  if (source.empty()) {
    t.style = architecture == Architecture::Qwen2 ? ChatStyle::ChatML : ChatStyle::Llama2;
  } else if (contains(source, "<|im_start|>")) {
    t.style = ChatStyle::ChatML;
    // Qwen templates add a system turn when the conversation has none; keep their wording.
    for (const char* s : {"You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
                          "You are a helpful assistant."})
      if (contains(source, s)) {
        t.default_system = s;
        break;
      }
  } else if (contains(source, "<|start_header_id|>")) {
    t.style = ChatStyle::Llama3;
  } else if (contains(source, "[INST]")) {
    t.style = ChatStyle::Llama2;
  } else {
    fail(ErrorCode::NotSupported,
         "chat: tokenizer.chat_template is in none of the supported styles "
         "(ChatML, Llama 3, Llama 2)");
  }
  return t;
}

std::string ChatTemplate::render(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  std::vector<ChatMessage> all;
  if (!default_system.empty() && (messages.empty() || messages.front().role != "system"))
    all.push_back({"system", default_system});
  all.insert(all.end(), messages.begin(), messages.end());
  std::string out;
  switch (style) {
    case ChatStyle::ChatML:
      for (const ChatMessage& m : all) {
        check_role(m);
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      }
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      break;
    case ChatStyle::Llama3:
      for (const ChatMessage& m : all) {
        check_role(m);
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    case ChatStyle::Llama2: {
      // The system prompt folds into the first user turn; each finished exchange closes with </s> and the
      // next opens with <s> (the very first <s> is the tokenizer's BOS).
      std::string system;
      bool first = true;
      for (const ChatMessage& m : all) {
        check_role(m);
        if (m.role == "system") {
          system = "<<SYS>>\n" + m.content + "\n<</SYS>>\n\n";
        } else if (m.role == "user") {
          out += (first ? "" : "<s>") + std::string("[INST] ") + system + m.content + " [/INST]";
          system.clear();
          first = false;
        } else {
          out += " " + m.content + " </s>";
        }
      }
      break;
    }
  }
  return out;
}

std::vector<std::string> ChatTemplate::end_of_turn_tokens() const {
  switch (style) {
    case ChatStyle::ChatML: return {"<|im_end|>", "<|endoftext|>"};
    case ChatStyle::Llama3: return {"<|eot_id|>", "<|end_of_text|>"};
    case ChatStyle::Llama2: return {"</s>"};
  }
  return {};
}

}  // namespace metallic
