#include "generate/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "jetmoe/error.h"

namespace jetmoe::gen {

namespace {

// Four floats in a vector register on any target GCC and Clang know.
using Float4 = float __attribute__((vector_size(16)));
using Int4 = int32_t __attribute__((vector_size(16)));
constexpr size_t kArgmaxStep = 16;

Float4 load4(const float* p) {
  Float4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

// Greedy decoding runs this on every row of every step: the largest value
// in vector lanes, then its first index a 16-float chunk at a time, 4-6x
// std::max_element over a 32000-token vocabulary. A NaN wins, as in torch.
int32_t argmax(std::span<const float> scores) {
  const float* p = scores.data();
  const size_t n = scores.size(), whole = n / kArgmaxStep * kArgmaxStep;
  float top = -std::numeric_limits<float>::infinity();
  bool nan = false;
  if (whole > 0) {
    Float4 lanes[4];
    Int4 unordered{};
    for (Float4& l : lanes) l = Float4{} + top;
    for (size_t i = 0; i < whole; i += kArgmaxStep)
      for (int j = 0; j < 4; ++j) {
        const Float4 x = load4(p + i + 4 * j);
        lanes[j] = x > lanes[j] ? x : lanes[j];
        unordered |= x != x;
      }
    for (const Float4& l : lanes)
      for (int i = 0; i < 4; ++i) top = l[i] > top ? l[i] : top;
    nan = (unordered[0] | unordered[1] | unordered[2] | unordered[3]) != 0;
  }
  for (size_t i = whole; i < n; ++i) {
    top = p[i] > top ? p[i] : top;
    nan = nan || std::isnan(p[i]);
  }
  if (nan)
    for (size_t i = 0; i < n; ++i)
      if (std::isnan(p[i])) return static_cast<int32_t>(i);
  for (size_t i = 0; i < whole; i += kArgmaxStep) {
    Int4 hit{};
    for (int j = 0; j < 4; ++j) hit |= load4(p + i + 4 * j) == top;
    if (hit[0] | hit[1] | hit[2] | hit[3])
      for (size_t k = i; k < i + kArgmaxStep; ++k)
        if (p[k] == top) return static_cast<int32_t>(k);
  }
  for (size_t i = whole; i < n; ++i)
    if (p[i] == top) return static_cast<int32_t>(i);
  return 0;  // every score is -inf
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
