#pragma once

namespace CLI { class App; }

namespace jetmoe::cli {

// Each subcommand adds itself to the app and runs from its callback.
void add_forward_command(CLI::App& app);
void add_init_random_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_chat_command(CLI::App& app);
void add_classify_command(CLI::App& app);
void add_perplexity_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_detokenize_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_quantize_command(CLI::App& app);

}  // namespace jetmoe::cli
