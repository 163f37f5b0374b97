#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "jetmoe/generation_config.h"

namespace jetmoe {

class JetMoeForCausalLM;

// A rectangular batch of prompts, as transformers' generate takes it:
// shorter prompts are left-padded and their mask has 0 on the padding.
// An empty attention_mask means every token is real.
struct GenerateInput {
  std::vector<std::vector<int32_t>> input_ids;
  std::vector<std::vector<int32_t>> attention_mask;
};

// Left-pads `prompts` to a common length with `pad_token_id`.
GenerateInput left_pad(const std::vector<std::vector<int32_t>>& prompts, int32_t pad_token_id);

struct GenerateOutput {
  // [batch * num_return_sequences] rows, each the prompt (with its padding)
  // followed by the new tokens; rows that stopped early are filled with
  // pad_token_id, as transformers returns them.
  std::vector<std::vector<int32_t>> sequences;
  // Beam search only: each returned hypothesis' length-normalised score.
  std::vector<double> sequences_scores;
  int64_t prompt_length = 0;
  // Per returned row: new tokens before padding, and why the row stopped.
  std::vector<int64_t> num_new_tokens;
  enum class FinishReason { Length, Eos, StopString };
  std::vector<FinishReason> finish_reasons;
};

struct GenerateCallbacks {
  // Each new token of each row as it is chosen (greedy and sampling; beam
  // search only knows its tokens at the end and does not call it). `row`
  // indexes the output rows.
  std::function<void(int64_t row, int32_t token)> on_token;
  // Asked after each new token; true stops that row (stop strings live
  // here because they need the tokenizer). `new_tokens` excludes the prompt.
  std::function<bool(int64_t row, std::span<const int32_t> new_tokens)> should_stop;
};

// transformers' GenerationMixin.generate for a decoder-only model: greedy,
// sampling or beam search by `config`, through the KV cache (the prompt is
// processed once, then one token per row per step), finished rows dropped
// from the batch. Throws Error for invalid configs or inputs.
GenerateOutput generate(const JetMoeForCausalLM& model, const GenerateInput& input, const GenerationConfig& config,
                        const GenerateCallbacks& callbacks = {});

}  // namespace jetmoe
