#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <memory>

#include "commands.h"
#include "jetmoe/error.h"
#include "jetmoe/init_random.h"

namespace jetmoe::cli {

namespace {

struct InitRandomArgs {
  std::string config, dtype = "bf16", output, shard_size = "5GB";
  uint64_t seed = 0;
  int threads = 0;
};

// transformers' max_shard_size spelling: "5GB", "500MB", "10KB" (powers of
// 1000) or a plain byte count.
uint64_t parse_size(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KB") scale = 1e3;
  else if (unit == "MB") scale = 1e6;
  else if (unit == "GB") scale = 1e9;
  if (used == 0 || scale == 0 || !(value > 0))
    throw Error("--shard-size \"" + text + "\": expected a positive size such as 5GB, 500MB or 1000000");
  return static_cast<uint64_t>(value * scale);
}

void run_init_random(const InitRandomArgs& a) {
  const auto start = std::chrono::steady_clock::now();
  InitRandomOptions options;
  options.dtype = a.dtype == "f32" ? DType::F32 : DType::BF16;
  options.seed = a.seed;
  options.max_shard_bytes = parse_size(a.shard_size);
  options.num_threads = a.threads;
  init_random_checkpoint(JetMoeConfig::from_file(a.config), a.output, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "jetmoe init-random: wrote " << a.output << " in " << seconds << " s\n";
}

}  // namespace

void add_init_random_command(CLI::App& app) {
  auto args = std::make_shared<InitRandomArgs>();
  CLI::App* cmd = app.add_subcommand("init-random", "Write a checkpoint folder with random weights for a config.json");
  cmd->footer(
      "Weights follow transformers' _init_weights: normal(0, initializer_range) for matrices and embeddings,\n"
      "1 for norms, 0 for biases. Tensors are generated and written piece by piece, so a full-size\n"
      "jetmoe-8b (~17 GB in bf16) is written with little memory. Shards are named as transformers\n"
      "names them (model-00001-of-0000N.safetensors + model.safetensors.index.json).");
  cmd->add_option("--config", args->config, "config.json giving the model shape")->required()->check(CLI::ExistingFile);
  cmd->add_option("--output", args->output, "Folder to write (created if missing)")->required();
  cmd->add_option("--dtype", args->dtype, "Weight dtype: bf16 or f32")->check(CLI::IsMember({"bf16", "f32"}))->capture_default_str();
  cmd->add_option("--seed", args->seed, "Random seed")->capture_default_str();
  cmd->add_option("--shard-size", args->shard_size, "Largest shard, e.g. 5GB or 500MB")->capture_default_str();
  cmd->add_option("--threads", args->threads, "Worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->callback([args] { run_init_random(*args); });
}

}  // namespace jetmoe::cli
