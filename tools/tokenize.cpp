// `metallic tokenize` and `metallic detokenize`: the tokenizer of a GGUF file, from the command line.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "command.h"
#include "metallic/model/gguf.h"
#include "metallic/model/tokenizer.h"

namespace metallic::cli {
namespace {

Tokenizer load_tokenizer(const std::string& path) {
  return Tokenizer(vocabulary_from_gguf(gguf::File::open(path)));
}

// Pieces may hold partial UTF-8 characters only in malformed files; JSON output must stay printable anyway.
std::string json_line(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

void add_tokenize_commands(CLI::App& app) {
  struct Options {
    std::string model;
    std::string text;
    bool no_bos = false;
    bool no_special = false;
    bool pieces = false;
    std::vector<int32_t> ids;
    bool skip_special = false;
  };
  auto options = std::make_shared<Options>();

  auto* tokenize = app.add_subcommand("tokenize", "Print the token ids of a text as a JSON array");
  tokenize->add_option("-m,--model", options->model, "GGUF file with the vocabulary")->required();
  tokenize->add_flag("--no-bos", options->no_bos, "Do not add BOS even when the vocabulary asks for it");
  tokenize->add_flag("--no-special", options->no_special, "Treat special-token spellings as plain text");
  tokenize->add_flag("--pieces", options->pieces,
                     "Also print the pieces, as a JSON array on the line before");
  tokenize->add_option("text", options->text, "Text to tokenize (use -- before a text starting with '-')");
  tokenize->callback([options] {
    const Tokenizer tok = load_tokenizer(options->model);
    const std::vector<int32_t> ids =
        tok.encode(options->text, tok.add_bos_by_default() && !options->no_bos, !options->no_special);
    if (options->pieces) {
      nlohmann::json pieces = nlohmann::json::array();
      for (const int32_t id : ids) pieces.push_back(tok.piece(id));
      std::printf("%s\n", json_line(pieces).c_str());
    }
    std::printf("%s\n", json_line(ids).c_str());
  });

  auto* detokenize = app.add_subcommand("detokenize", "Print the text of a sequence of token ids");
  detokenize->add_option("-m,--model", options->model, "GGUF file with the vocabulary")->required();
  detokenize->add_flag("--skip-special", options->skip_special, "Leave out control tokens");
  detokenize->add_option("ids", options->ids, "Token ids");
  detokenize->callback([options] {
    const Tokenizer tok = load_tokenizer(options->model);
    const std::string text = tok.decode(options->ids, options->skip_special);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::printf("\n");
  });
}

}  // namespace metallic::cli
