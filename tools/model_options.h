#pragma once
// The flags every command that runs a model shares (--model, --threads,
// --weights, --compute, --kv-dtype), and where a left-out --model leads: the demo model
// shipped with the repository.
#include <string>

#include "jetmoe/model.h"

namespace CLI { class App; }

namespace jetmoe::cli {

struct ModelOptions {
  std::string model;  // empty = the demo model
  int threads = 0;
  std::string weights = "bf16";  // bf16 (as stored), q8_0, q4_0
  std::string compute = "f32";   // f32 (exact), bf16
  std::string kv_dtype = "f32";  // f32 (exact), f16, bf16

  // The folder to load: --model resolved (folder, file or Hugging Face repo
  // id in the local cache), or the demo model.
  std::string resolved_model() const;
  LoadOptions load_options() const;
};

void add_model_options(CLI::App* cmd, ModelOptions& options);

// models/jetmoe-kjv-tiny of the source tree this binary was built from, or
// next to the installed binary.
std::string default_model_dir();

}  // namespace jetmoe::cli
