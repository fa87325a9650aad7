// metallic: the command-line front end. Library errors end here as "error: ..." and a non-zero exit.
#include <cstdio>
#include <exception>

#include "command.h"
#include "metallic/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"metallic: LLM inference on CUDA and CPU"};
  app.require_subcommand(1);
  metallic::cli::add_info_command(app);
  metallic::cli::add_run_command(app);
  metallic::cli::add_chat_command(app);
  metallic::cli::add_logits_command(app);
  metallic::cli::add_synth_command(app);
  metallic::cli::add_bench_command(app);
  metallic::cli::add_inspect_command(app);
  metallic::cli::add_tokenize_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s (see --help)\n", e.what());
    return 2;
  } catch (const metallic::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
