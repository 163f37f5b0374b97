#include "jetmoe/perplexity.h"

#include <algorithm>
#include <cmath>

#include "jetmoe/error.h"
#include "jetmoe/model.h"

namespace jetmoe {

PerplexityResult sliding_window_perplexity(const JetMoeForCausalLM& model, std::span<const int32_t> ids, int64_t max_length,
                                           int64_t stride, const std::function<void(int64_t, int64_t)>& progress) {
  const auto n = static_cast<int64_t>(ids.size());
  if (max_length < 2) throw Error("perplexity: context " + std::to_string(max_length) + " must be at least 2 tokens");
  if (stride < 1 || stride > max_length)
    throw Error("perplexity: stride " + std::to_string(stride) + " must be between 1 and the context (" + std::to_string(max_length) + ")");
  if (n < 2) throw Error("perplexity: the text has " + std::to_string(n) + " tokens; at least 2 are needed");
  model.config().check_sequence_length(std::min(max_length, n));
  const int64_t total_windows = n <= max_length ? 1 : (n - max_length + stride - 1) / stride + 1;

  PerplexityResult r;
  r.num_tokens = n;
  double sum_loss = 0, weighted = 0;
  int64_t prev_end = 0;
  const int64_t D = model.config().hidden_size, V = model.config().vocab_size;
  std::vector<float> logits;
  for (int64_t begin = 0; begin < n; begin += stride) {
    const int64_t end = std::min(begin + max_length, n);
    const int64_t scored = end - prev_end;
    const ModelInput in = ModelInput::from_ids({std::vector<int32_t>(ids.begin() + begin, ids.begin() + end)});
    const BaseModelOutput out = model.model().forward(in);
    // transformers computes every position's logits and ignores the
    // unscored ones (labels -100, and the first label lost to the shift);
    // only the scored positions go through the LM head here, the head being
    // most of the cost.
    const int64_t first = std::max<int64_t>(0, (end - begin) - scored - 1), last = end - begin - 1;
    const int64_t rows = last - first;
    logits.resize(static_cast<size_t>(rows * V));
    model.lm_head(&out.last_hidden_state.data[static_cast<size_t>(first * D)], rows, logits.data());
    double nll = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = &logits[static_cast<size_t>(r * V)];
      const float mx = *std::max_element(row, row + V);
      double sum = 0;
      for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v]) - mx);
      const int32_t target = ids[static_cast<size_t>(begin + first + r + 1)];
      nll += std::log(sum) + mx - row[target];
    }
    const double loss = nll / static_cast<double>(rows);
    sum_loss += loss;
    weighted += loss * static_cast<double>(scored - 1);
    r.scored_tokens += scored - 1;
    ++r.num_windows;
    if (progress) progress(r.num_windows, total_windows);
    prev_end = end;
    if (end == n) break;
  }
  r.ppl = std::exp(sum_loss / static_cast<double>(r.num_windows));
  r.ppl_token_weighted = std::exp(weighted / static_cast<double>(r.scored_tokens));
  return r;
}

}  // namespace jetmoe
