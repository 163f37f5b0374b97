#pragma once
// What the decoding strategies share: a validated request with its lengths
// resolved, and the per-step model call.
#include <cstdint>
#include <vector>

#include "jetmoe/generate.h"
#include "jetmoe/generation_config.h"
#include "jetmoe/model.h"

namespace jetmoe::gen {

struct Request {
  GenerationConfig config;  // pad_token_id resolved
  std::vector<std::vector<int32_t>> ids;    // [rows][prompt_length]
  std::vector<std::vector<int32_t>> masks;  // same shape
  int64_t prompt_length = 0;
  int64_t max_length = 0;  // prompt + new tokens
};

// One forward over `rows` of the batch (their order is the cache's order):
// the whole prompt when the cache is empty, else each row's last token.
// Position ids follow transformers: cumsum(mask) - 1, 1 on padding.
// Returns the last position's logits [rows.size(), V].
const std::vector<float>& step(const JetMoeForCausalLM& model, KVCache& cache, const Request& r,
                               const std::vector<int64_t>& rows, ModelInput& scratch_input, CausalLMOutput& scratch_out);

GenerateOutput sample_search(const JetMoeForCausalLM& model, Request& r, const GenerateCallbacks& callbacks);
GenerateOutput beam_search(const JetMoeForCausalLM& model, Request& r);

bool is_eos(const GenerationConfig& c, int32_t token);

}  // namespace jetmoe::gen
