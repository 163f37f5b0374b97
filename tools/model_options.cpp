#include "model_options.h"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <unistd.h>

#include "jetmoe/error.h"
#include "jetmoe/model_path.h"

namespace jetmoe::cli {

namespace fs = std::filesystem;

std::string default_model_dir() {
  std::vector<fs::path> candidates;
#ifdef JETMOE_DEFAULT_MODEL_DIR
  candidates.emplace_back(JETMOE_DEFAULT_MODEL_DIR);
#endif
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path().parent_path() / "models" / "jetmoe-kjv-tiny");
    candidates.push_back(exe.parent_path().parent_path() / "share" / "jetmoe" / "models" / "jetmoe-kjv-tiny");
  }
  for (const auto& c : candidates)
    if (fs::is_regular_file(c / "config.json", ec)) return c.string();
  std::string looked;
  for (const auto& c : candidates) looked += "\n  " + c.string();
  throw Error("no --model given and the demo model jetmoe-kjv-tiny was not found; looked in:" + looked);
}

std::string ModelOptions::resolved_model() const { return model.empty() ? default_model_dir() : resolve_model_path(model); }

LoadOptions ModelOptions::load_options() const {
  LoadOptions o;
  o.num_threads = threads;
  o.weights = parse_weight_format(weights);
  o.compute = parse_compute_mode(compute);
  o.kv_dtype = parse_kv_dtype(kv_dtype);
  return o;
}

void add_model_options(CLI::App* cmd, ModelOptions& o) {
  cmd->add_option("--model,-m", o.model,
                  "Model folder (Hugging Face layout), a .gguf file from jetmoe quantize, or a Hugging Face repo id found "
                  "in the local HF cache (e.g. jetmoe/jetmoe-8b). Default: the demo model models/jetmoe-kjv-tiny");
  cmd->add_option("--threads", o.threads, "Worker threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--weights", o.weights,
                  "bf16 (as stored), q8_0 or q4_0 (quantised at load; a quantised .gguf is used as stored and "
                  "refuses another format)")
      ->check(CLI::IsMember({"bf16", "q8_0", "q4_0"}))
      ->capture_default_str();
  cmd->add_option("--compute", o.compute, "f32 (exact) or bf16 (activations rounded to bf16: faster, approximate)")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--kv-dtype", o.kv_dtype,
                  "KV cache: f32 (exact), f16 or bf16 (rounded: half the memory and the bytes attention reads)")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}))
      ->capture_default_str();
}

}  // namespace jetmoe::cli
