#include "generation_flags.h"

#include <CLI/CLI.hpp>
#include <fstream>
#include <sstream>

#include "jetmoe/error.h"

namespace jetmoe::cli {

void add_generation_flags(CLI::App* cmd, GenerationFlags& f) {
  f.cmd = cmd;
  const char* g = "Generation (defaults: the model's generation_config.json, else transformers' defaults)";
  cmd->add_option("--generation-config", f.config_file, "A generation_config.json whose fields override the model's")->group(g);
  cmd->add_option("--max-new-tokens", f.max_new_tokens, "New tokens to generate at most (without it, --max-length applies)")->group(g);
  cmd->add_option("--max-length", f.max_length, "Prompt plus new tokens at most (transformers' default 20); --max-new-tokens wins")->group(g);
  cmd->add_option("--min-new-tokens", f.min_new_tokens, "EOS is suppressed until this many new tokens exist")->group(g);
  cmd->add_option("--min-length", f.min_length, "EOS is suppressed until prompt + new tokens reach this length")->group(g);
  cmd->add_flag("--do-sample", f.do_sample, "Sample instead of greedy search")->group(g);
  cmd->add_option("--temperature", f.temperature, "Sampling temperature (> 0)")->group(g);
  cmd->add_option("--top-k", f.top_k, "Keep the k most likely tokens when sampling (0 = off; default 50)")->group(g);
  cmd->add_option("--top-p", f.top_p, "Nucleus sampling: keep the smallest set with this probability mass")->group(g);
  cmd->add_option("--min-p", f.min_p, "Drop tokens below min_p times the top probability")->group(g);
  cmd->add_option("--typical-p", f.typical_p, "Locally typical sampling mass")->group(g);
  cmd->add_option("--repetition-penalty", f.repetition_penalty, "Penalise tokens already in the sequence (1 = off)")->group(g);
  cmd->add_option("--no-repeat-ngram-size", f.no_repeat_ngram_size, "Never repeat an n-gram of this size")->group(g);
  cmd->add_option("--num-beams", f.num_beams, "Beam search with this many beams (1 = greedy or sampling)")->group(g);
  cmd->add_option("--length-penalty", f.length_penalty, "Beam scores are divided by length**length_penalty")->group(g);
  cmd->add_option("--early-stopping", f.early_stopping, "Beam search stopping rule: true, false or never")
      ->check(CLI::IsMember({"true", "false", "never"}))
      ->group(g);
  cmd->add_option("--num-return-sequences", f.num_return_sequences, "Sequences per prompt (beam search or sampling)")->group(g);
  cmd->add_option("--eos-token-id", f.eos_token_id, "End-of-sequence token id(s); repeat for several")->group(g);
  cmd->add_option("--pad-token-id", f.pad_token_id, "Token that fills rows which finished early")->group(g);
  cmd->add_option("--stop", f.stop, "Stop a row once its new text contains this string; repeat for several")->group(g);
  cmd->add_option("--seed", f.seed, "Seed for sampling (default: random)")->group(g);
}

GenerationConfig GenerationFlags::apply(GenerationConfig c) const {
  if (!config_file.empty()) {
    std::ifstream in(config_file, std::ios::binary);
    if (!in) throw Error(config_file + ": cannot open for reading");
    std::ostringstream ss;
    ss << in.rdbuf();
    c.update_from_json(ss.str(), config_file);
  }
  auto given = [&](const char* name) { return cmd->count(name) > 0; };
  if (given("--max-new-tokens")) c.max_new_tokens = max_new_tokens;
  if (given("--max-length")) {
    c.max_length = max_length;
    if (!given("--max-new-tokens")) c.max_new_tokens.reset();
  }
  if (given("--min-new-tokens")) c.min_new_tokens = min_new_tokens;
  if (given("--min-length")) c.min_length = min_length;
  if (given("--do-sample")) c.do_sample = do_sample;
  if (given("--temperature")) c.temperature = temperature;
  if (given("--top-k")) c.top_k = top_k;
  if (given("--top-p")) c.top_p = top_p;
  if (given("--min-p")) c.min_p = min_p;
  if (given("--typical-p")) c.typical_p = typical_p;
  if (given("--repetition-penalty")) c.repetition_penalty = repetition_penalty;
  if (given("--no-repeat-ngram-size")) c.no_repeat_ngram_size = no_repeat_ngram_size;
  if (given("--num-beams")) c.num_beams = num_beams;
  if (given("--length-penalty")) c.length_penalty = length_penalty;
  if (given("--early-stopping"))
    c.early_stopping = early_stopping == "never" ? EarlyStopping::Never
                       : early_stopping == "true" ? EarlyStopping::True
                                                  : EarlyStopping::False;
  if (given("--num-return-sequences")) c.num_return_sequences = num_return_sequences;
  if (given("--eos-token-id")) {
    c.eos_token_id.clear();
    for (int64_t e : eos_token_id) {
      if (e < 0 || e > INT32_MAX) throw Error("--eos-token-id " + std::to_string(e) + ": expected a token id >= 0");
      c.eos_token_id.push_back(static_cast<int32_t>(e));
    }
  }
  if (given("--pad-token-id")) {
    if (pad_token_id < 0 || pad_token_id > INT32_MAX) throw Error("--pad-token-id " + std::to_string(pad_token_id) + ": expected a token id >= 0");
    c.pad_token_id = static_cast<int32_t>(pad_token_id);
  }
  if (given("--stop")) c.stop_strings = stop;
  if (given("--seed")) {
    if (seed < 0) throw Error("--seed " + std::to_string(seed) + ": expected a non-negative integer");
    c.seed = static_cast<uint64_t>(seed);
  }
  c.validate();
  return c;
}

}  // namespace jetmoe::cli
