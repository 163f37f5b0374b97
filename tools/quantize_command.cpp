#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>

#include "commands.h"
#include "jetmoe/error.h"
#include "jetmoe/model_files.h"
#include "jetmoe/model_path.h"
#include "jetmoe/quantize.h"
#include "progress_bar.h"

namespace jetmoe::cli {

namespace {

struct QuantizeArgs {
  std::string model, type, output;
  int threads = 0;
};

const char* kQuantizeHelp = R"(Write a checkpoint folder as one GGUF file with quantised weights.

The file holds everything a model folder does: general.architecture "jetmoe",
config.json (metadata jetmoe.config_json, plus the shape as jetmoe.* keys),
the tokenizer (tokenizer.huggingface.json, tokenizer_config.json, the chat
template, tokenizer.ggml.tokens), generation_config.json, and the weights by
their Hugging Face names. The matrices that --weights q8_0|q4_0 quantises at
load (attention and MLP experts, kv_proj, the LM head) are stored in that
format, byte for byte what the load would make; routers, norms, biases and
the embedding stay as stored. So `--model FILE.gguf` (accepted by every
command that takes --model) loads memory-mapped with no conversion and gives
the same logits as `--model DIR --weights TYPE`.

The quantised tensors use this engine's block layout (same 34 / 18 bytes per
32 weights as ggml's Q8_0 / Q4_0, arranged differently), under their own
tensor type ids, so other GGUF readers do not mistake them for ggml's.)";

void run_quantize(const QuantizeArgs& a) {
  const std::string dir = resolve_model_path(a.model);
  if (is_gguf_path(dir)) throw Error(dir + ": already a GGUF file; quantize reads a checkpoint folder");
  if (!is_gguf_path(a.output)) throw Error("--output " + a.output + ": expected a file name ending in .gguf");
  QuantizeOptions options;
  options.type = parse_weight_format(a.type);
  options.num_threads = a.threads;
  ProgressBar bar("quantize " + a.type);
  options.progress = [&bar](uint64_t done, uint64_t total, const std::string& tensor) {
    bar.update(static_cast<int64_t>(done >> 20), static_cast<int64_t>(total >> 20), "MiB " + tensor);
  };
  const auto start = std::chrono::steady_clock::now();
  const QuantizeResult r = quantize_to_gguf(dir, a.output, options);
  bar.finish();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char line[256];
  std::snprintf(line, sizeof line, "jetmoe quantize: wrote %s (%.1f MiB, %lld tensors, %lld in %s) in %.2f s\n", a.output.c_str(),
                static_cast<double>(r.file_bytes) / (1 << 20), static_cast<long long>(r.tensors),
                static_cast<long long>(r.quantized), a.type.c_str(), seconds);
  std::cerr << line;
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* cmd = app.add_subcommand("quantize", "Write a checkpoint folder as one .gguf file with q8_0 or q4_0 weights");
  cmd->description(kQuantizeHelp);
  cmd->add_option("--model,-m", args->model, "Checkpoint folder, or a Hugging Face repo id found in the local HF cache")->required();
  cmd->add_option("--type", args->type, "Weight format: q8_0 (8-bit, near exact) or q4_0 (4-bit, smallest)")
      ->required()
      ->check(CLI::IsMember({"q8_0", "q4_0"}));
  cmd->add_option("--output,-o", args->output, "The .gguf file to write (replaced if it exists; written as FILE.tmp first)")->required();
  cmd->add_option("--threads", args->threads, "Worker threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd->callback([args] { run_quantize(*args); });
}

}  // namespace jetmoe::cli
