#include "generate/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "jetmoe/error.h"
#include "ops/softmax.h"

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

// The largest value in vector lanes (NaNs never win a comparison) and
// whether any value was NaN: 4-6x std::max_element over a 32000-token
// vocabulary, whose compares form one dependency chain.
struct Peak {
  float top;
  bool nan;
};
Peak peak_of(std::span<const float> scores) {
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
  return {top, nan};
}

}  // namespace

float max_score(std::span<const float> scores) { return peak_of(scores).top; }

void indices_at_least(std::span<const float> scores, float floor, std::vector<int32_t>& out) {
  out.clear();
  const float* p = scores.data();
  const size_t n = scores.size();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const Int4 hit = (load4(p + i) >= floor) | (load4(p + i + 4) >= floor);
    if ((hit[0] | hit[1] | hit[2] | hit[3]) == 0) continue;
    for (size_t j = i; j < i + 8; ++j)
      if (p[j] >= floor) out.push_back(static_cast<int32_t>(j));
  }
  for (; i < n; ++i)
    if (p[i] >= floor) out.push_back(static_cast<int32_t>(i));
}

// Greedy decoding runs this on every row of every step: the largest value
// in vector lanes, then its first index a 16-float chunk at a time. A NaN
// wins, as in torch.
int32_t argmax(std::span<const float> scores) {
  const float* p = scores.data();
  const size_t n = scores.size(), whole = n / kArgmaxStep * kArgmaxStep;
  const auto [top, nan] = peak_of(scores);
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

// The probabilities come from the vectorised exp, and the draw finds its
// 64-token block from the blocks' sums before it walks one block: glibc's
// double exp and one running sum over a 32000-token vocabulary took ~450 us
// a token, more than the demo model's forward pass.
int32_t sample_from_scores(std::span<const float> scores, double u, std::vector<float>& probs) {
  constexpr size_t kBlock = 64;
  const size_t n = scores.size(), blocks = (n + kBlock - 1) / kBlock;
  const float mx = max_score(scores);
  // The tokens' unnormalised probabilities, then each block's sum.
  probs.resize(n + blocks);
  float* block_sum = probs.data() + n;
  double total = 0;
  if (std::isfinite(mx)) {
    total = ops::exp_shifted(scores.data(), static_cast<int64_t>(n), mx, probs.data());
    for (size_t b = 0; b < blocks; ++b) {
      const size_t end = std::min(n, (b + 1) * kBlock);
      size_t i = b * kBlock;
      Float4 lo{}, hi{};
      for (; i + 8 <= end; i += 8) {
        lo += load4(probs.data() + i);
        hi += load4(probs.data() + i + 4);
      }
      lo += hi;
      float sum = (lo[0] + lo[1]) + (lo[2] + lo[3]);
      for (; i < end; ++i) sum += probs[i];
      block_sum[b] = sum;
    }
  }
  if (!(total > 0)) throw Error("sampling: every token was filtered out or the logits are not finite");
  const double target = u * total;
  double cum = 0;
  size_t b = 0;
  for (; b + 1 < blocks && cum + block_sum[b] <= target; ++b) cum += block_sum[b];
  // Rounding in the block sums may carry the walk past its block, and can
  // leave target a hair above the final sum: then the last token with mass
  // is what it reached (there is one, as total > 0).
  int64_t last = -1;
  for (size_t i = b * kBlock; i < n; ++i) {
    if (probs[i] == 0) continue;
    cum += probs[i];
    last = static_cast<int64_t>(i);
    if (target < cum) return static_cast<int32_t>(i);
  }
  for (size_t i = b * kBlock; last < 0 && i-- > 0;)
    if (probs[i] != 0) last = static_cast<int64_t>(i);
  return static_cast<int32_t>(last);
}

}  // namespace jetmoe::gen
