#pragma once
// The generation flags (transformers' GenerationConfig names with dashes),
// shared by generate and chat. Only flags given on the command line
// override the model folder's generation_config.json.
#include <string>
#include <vector>

#include "jetmoe/generation_config.h"

namespace CLI { class App; }

namespace jetmoe::cli {

struct GenerationFlags {
  CLI::App* cmd = nullptr;
  std::string config_file;
  int64_t max_new_tokens = 0, max_length = 0, min_new_tokens = 0, min_length = 0, top_k = 0, no_repeat_ngram_size = 0,
          num_beams = 1, num_return_sequences = 1, seed = 0;
  double temperature = 1, top_p = 1, min_p = 0, typical_p = 1, repetition_penalty = 1, length_penalty = 1;
  bool do_sample = false;
  std::string early_stopping;
  std::vector<int64_t> eos_token_id;
  int64_t pad_token_id = 0;
  std::vector<std::string> stop;

  // `defaults` (from the model folder) with --generation-config and the
  // given flags applied, validated.
  GenerationConfig apply(GenerationConfig defaults) const;
};

void add_generation_flags(CLI::App* cmd, GenerationFlags& flags);

}  // namespace jetmoe::cli
