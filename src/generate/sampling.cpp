#include "generate/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "jetmoe/error.h"

namespace jetmoe::gen {

int32_t argmax(std::span<const float> scores) {
  return static_cast<int32_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
}

int32_t sample_from_scores(std::span<const float> scores, double u, std::vector<double>& probs) {
  const float mx = *std::max_element(scores.begin(), scores.end());
  if (!(mx > -std::numeric_limits<float>::infinity()))
    throw Error("sampling: every token was filtered out or the logits are not finite");
  probs.resize(scores.size());
  double total = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    probs[i] = std::isfinite(scores[i]) ? std::exp(static_cast<double>(scores[i]) - mx) : 0.0;
    total += probs[i];
  }
  const double target = u * total;
  double cum = 0;
  int32_t last_possible = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] == 0) continue;
    cum += probs[i];
    last_possible = static_cast<int32_t>(i);
    if (target < cum) return static_cast<int32_t>(i);
  }
  // Rounding can leave target a hair above the final sum.
  return last_possible;
}

}  // namespace jetmoe::gen
