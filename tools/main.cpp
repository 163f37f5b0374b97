#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "commands.h"
#include "jetmoe/error.h"

int main(int argc, char** argv) {
  CLI::App app{
      "jetmoe: run JetMoE language models from Hugging Face checkpoint folders or .gguf files.\n"
      "Each subcommand has its own --help."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "jetmoe 0.1.0");
  jetmoe::cli::add_generate_command(app);
  jetmoe::cli::add_chat_command(app);
  jetmoe::cli::add_classify_command(app);
  jetmoe::cli::add_perplexity_command(app);
  jetmoe::cli::add_serve_command(app);
  jetmoe::cli::add_forward_command(app);
  jetmoe::cli::add_init_random_command(app);
  jetmoe::cli::add_tokenize_command(app);
  jetmoe::cli::add_detokenize_command(app);
  jetmoe::cli::add_bench_command(app);
  jetmoe::cli::add_quantize_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const jetmoe::Error& e) {
    std::cerr << "jetmoe: error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "jetmoe: error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "jetmoe: internal error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
