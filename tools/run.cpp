#include <cstdio>
#include <iostream>

#include "command.h"
#include "generation_flags.h"
#include "metallic/core/error.h"
#include "metallic/model/chat_template.h"

namespace metallic::cli {
void add_run_command(CLI::App& app) {
  struct Args {
    GenerationFlags flags;
    std::string prompt = "Once upon a time";
    std::string prompt_ids;
    bool print_ids = false;
    bool no_bos = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("run", "Generate text from a prompt, streaming it to stdout");
  args->flags.add_to(*cmd);
  cmd->add_option("-p,--prompt", args->prompt, "prompt text");
  cmd->add_option("--prompt-ids", args->prompt_ids,
                  "start from these token ids (\"1 2 3\"; no BOS is added)");
  cmd->add_flag("--print-ids", args->print_ids,
                "print the generated ids as a JSON array on the last line instead of text");
  cmd->add_flag("--no-bos", args->no_bos, "do not add the BOS token to the prompt");
  cmd->callback([args] {
    const LoadedModel loaded = load_model(args->flags.model, args->flags.device);
    std::vector<int32_t> prompt;
    if (!args->prompt_ids.empty()) {
      prompt = parse_token_ids(args->prompt_ids);
      check(!prompt.empty(), ErrorCode::InvalidArgument, "--prompt-ids holds no ids");
    } else {
      prompt = loaded.tokenizer->encode(args->prompt, loaded.tokenizer->add_bos_by_default() && !args->no_bos,
                                        true);
      check(!prompt.empty(), ErrorCode::InvalidArgument,
            "the prompt is empty and the model adds no BOS token");
    }
    Session session(loaded.model, loaded.tokenizer, args->flags.context_for(*loaded.model));
    GenerationStats stats;
    const TextCallback stream = [&](std::string_view text) {
      if (!args->print_ids) {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
      }
      return true;
    };
    if (!args->print_ids && args->prompt_ids.empty()) std::fputs(args->prompt.c_str(), stdout);
    const std::vector<int32_t> ids = session.generate(prompt, args->flags.options(), stream, &stats);
    if (args->print_ids) {
      std::string line = "[";
      for (size_t i = 0; i < ids.size(); ++i) line += (i ? ", " : "") + std::to_string(ids[i]);
      std::printf("%s]\n", line.c_str());
    } else {
      std::printf("\n");
    }
    print_stats(loaded, stats);
  });
}

void add_chat_command(CLI::App& app) {
  auto flags = std::make_shared<GenerationFlags>();
  auto system = std::make_shared<std::string>();
  auto* cmd =
      app.add_subcommand("chat", "Talk with the model in its chat format (one line per turn; /exit ends)");
  flags->add_to(*cmd);
  flags->n_predict = 512;
  cmd->add_option("--system", *system, "system prompt");
  cmd->callback([flags, system] {
    const LoadedModel loaded = load_model(flags->model, flags->device);
    const ChatTemplate chat =
        ChatTemplate::from_gguf(loaded.model->file(), loaded.model->config().architecture);
    Session session(loaded.model, loaded.tokenizer, flags->context_for(*loaded.model));
    GenerationOptions options = flags->options();
    for (const std::string& piece : chat.end_of_turn_tokens()) {
      const std::vector<int32_t> ids = loaded.tokenizer->encode(piece, false, true);
      if (ids.size() == 1) options.stop_tokens.push_back(ids[0]);
    }
    std::vector<ChatMessage> messages;
    if (!system->empty()) messages.push_back({"system", *system});
    std::string line;
    while (true) {
      std::fprintf(stderr, "> ");
      if (!std::getline(std::cin, line) || line == "/exit") break;
      if (line.empty()) continue;
      messages.push_back({"user", line});
      const std::vector<int32_t> prompt =
          loaded.tokenizer->encode(chat.render(messages, true), loaded.tokenizer->add_bos_by_default(), true);
      std::string reply;
      GenerationStats stats;
      session.generate(
          prompt, options,
          [&](std::string_view text) {
            reply += text;
            std::fwrite(text.data(), 1, text.size(), stdout);
            std::fflush(stdout);
            return true;
          },
          &stats);
      messages.push_back({"assistant", reply});
      print_stats(loaded, stats);
    }
  });
}

}  // namespace metallic::cli
