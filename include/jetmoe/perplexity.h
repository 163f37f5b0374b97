#pragma once
#include <cstdint>
#include <functional>
#include <span>

namespace jetmoe {

class JetMoeForCausalLM;

struct PerplexityResult {
  double ppl = 0;                 // exp(mean of window losses), the guide's formula
  double ppl_token_weighted = 0;  // exp(sum(loss * (scored - 1)) / sum(scored - 1)), the newer guide's
  int64_t num_tokens = 0;
  int64_t num_windows = 0;
  int64_t scored_tokens = 0;      // sum over windows of (scored - 1)
};

// Perplexity of `ids` the way the transformers guide "Perplexity of
// fixed-length models" computes it: windows of `max_length` tokens starting
// every `stride` tokens; each window scores only the targets the previous
// window did not (labels -100 elsewhere) and contributes its mean loss.
// `progress(done, total)` is called after each window.
PerplexityResult sliding_window_perplexity(const JetMoeForCausalLM& model, std::span<const int32_t> ids, int64_t max_length,
                                           int64_t stride, const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace jetmoe
