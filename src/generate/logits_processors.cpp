#include "generate/logits_processors.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace jetmoe::gen {

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Softmax of `scores` taken in the order `order`, in double.
void softmax_in_order(std::span<const float> scores, const std::vector<int32_t>& order, std::vector<double>& probs) {
  probs.resize(order.size());
  float mx = kNegInf;
  for (float x : scores) mx = std::max(mx, x);
  double sum = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const float x = scores[static_cast<size_t>(order[i])];
    probs[i] = x == kNegInf ? 0.0 : std::exp(static_cast<double>(x) - mx);
    sum += probs[i];
  }
  for (double& p : probs) p /= sum;
}

void fill_order(size_t n, std::vector<int32_t>& order) {
  order.resize(n);
  std::iota(order.begin(), order.end(), 0);
}
}  // namespace

void repetition_penalty(std::span<const int32_t> ids, double penalty, std::span<float> scores) {
  // transformers gathers every id's score first and scatters afterwards, so a
  // repeated id is penalised once.
  const float p = static_cast<float>(penalty);
  std::vector<bool> seen(scores.size(), false);
  for (int32_t id : ids) {
    const auto i = static_cast<size_t>(id);
    if (i >= scores.size() || seen[i]) continue;
    seen[i] = true;
    scores[i] = scores[i] < 0 ? scores[i] * p : scores[i] / p;
  }
}

void no_repeat_ngram(std::span<const int32_t> ids, int64_t n, std::span<float> scores) {
  const auto len = static_cast<int64_t>(ids.size());
  if (n <= 0 || len + 1 < n) return;
  // Any earlier n-gram whose first n-1 tokens equal the last n-1 tokens bans
  // its final token.
  const int64_t start = len - (n - 1);
  for (int64_t i = 0; i + n <= len; ++i) {
    if (std::equal(ids.begin() + i, ids.begin() + i + n - 1, ids.begin() + start)) {
      const auto banned = static_cast<size_t>(ids[static_cast<size_t>(i + n - 1)]);
      if (banned < scores.size()) scores[banned] = kNegInf;
    }
  }
}

void suppress_eos(const std::vector<int32_t>& eos, std::span<float> scores) {
  for (int32_t e : eos)
    if (static_cast<size_t>(e) < scores.size()) scores[static_cast<size_t>(e)] = kNegInf;
}

void temperature(double t, std::span<float> scores) {
  const float tf = static_cast<float>(t);
  for (float& x : scores) x /= tf;
}

void top_k(int64_t k, int64_t min_tokens_to_keep, std::span<float> scores, WarpScratch& s) {
  k = std::min<int64_t>(std::max(k, min_tokens_to_keep), static_cast<int64_t>(scores.size()));
  if (k <= 0) return;
  s.values.assign(scores.begin(), scores.end());
  std::nth_element(s.values.begin(), s.values.begin() + (k - 1), s.values.end(), std::greater<float>());
  const float kth = s.values[static_cast<size_t>(k - 1)];
  // Ties with the k-th value survive, as in transformers (`scores < kth`).
  for (float& x : scores)
    if (x < kth) x = kNegInf;
}

void top_p(double p, int64_t min_tokens_to_keep, std::span<float> scores, WarpScratch& s) {
  fill_order(scores.size(), s.order);
  std::stable_sort(s.order.begin(), s.order.end(),
                   [&](int32_t a, int32_t b) { return scores[static_cast<size_t>(a)] < scores[static_cast<size_t>(b)]; });
  softmax_in_order(scores, s.order, s.probs);
  // Ascending order: drop the low tail whose cumulative mass stays within 1 - p.
  double cum = 0;
  const auto keep_from = static_cast<int64_t>(s.order.size()) - min_tokens_to_keep;
  for (size_t i = 0; i < s.order.size(); ++i) {
    cum += s.probs[i];
    if (cum <= 1.0 - p && static_cast<int64_t>(i) < keep_from) scores[static_cast<size_t>(s.order[i])] = kNegInf;
  }
}

void min_p(double p, int64_t min_tokens_to_keep, std::span<float> scores, WarpScratch& s) {
  fill_order(scores.size(), s.order);
  softmax_in_order(scores, s.order, s.probs);
  const double top = *std::max_element(s.probs.begin(), s.probs.end());
  const double threshold = p * top;
  // The min_tokens_to_keep best tokens stay whatever their probability.
  std::stable_sort(s.order.begin(), s.order.end(),
                   [&](int32_t a, int32_t b) { return scores[static_cast<size_t>(a)] > scores[static_cast<size_t>(b)]; });
  for (size_t r = static_cast<size_t>(std::max<int64_t>(min_tokens_to_keep, 0)); r < s.order.size(); ++r) {
    const auto i = static_cast<size_t>(s.order[r]);
    if (s.probs[i] < threshold) scores[i] = kNegInf;
  }
}

void typical_p(double mass, int64_t min_tokens_to_keep, std::span<float> scores, WarpScratch& s) {
  const size_t n = scores.size();
  fill_order(n, s.order);
  softmax_in_order(scores, s.order, s.probs);
  double entropy = 0;
  for (double q : s.probs)
    if (q > 0) entropy -= q * std::log(q);
  // Distance of each token's surprisal from the entropy; keep the closest
  // tokens until their mass reaches `mass`.
  s.values.resize(n);
  for (size_t i = 0; i < n; ++i)
    s.values[i] = s.probs[i] > 0 ? static_cast<float>(std::abs(-std::log(s.probs[i]) - entropy)) : std::numeric_limits<float>::infinity();
  std::stable_sort(s.order.begin(), s.order.end(),
                   [&](int32_t a, int32_t b) { return s.values[static_cast<size_t>(a)] < s.values[static_cast<size_t>(b)]; });
  double cum = 0;
  size_t last = 0;
  for (size_t r = 0; r < n; ++r) {
    cum += s.probs[static_cast<size_t>(s.order[r])];
    if (cum < mass) last = r + 1;
  }
  last = std::min(last, n - 1);
  const float limit = s.values[static_cast<size_t>(s.order[last])];
  for (size_t r = static_cast<size_t>(std::max<int64_t>(min_tokens_to_keep, 0)); r < n; ++r) {
    const auto i = static_cast<size_t>(s.order[r]);
    if (s.values[i] > limit) scores[i] = kNegInf;
  }
}

void apply_processors(const GenerationConfig& c, std::span<const int32_t> ids, int64_t prompt_length,
                      std::span<float> scores) {
  if (c.repetition_penalty != 1.0) repetition_penalty(ids, c.repetition_penalty, scores);
  if (c.no_repeat_ngram_size > 0) no_repeat_ngram(ids, c.no_repeat_ngram_size, scores);
  const auto len = static_cast<int64_t>(ids.size());
  if (c.min_length > 0 && len < c.min_length) suppress_eos(c.eos_token_id, scores);
  if (c.min_new_tokens && *c.min_new_tokens > 0 && len - prompt_length < *c.min_new_tokens)
    suppress_eos(c.eos_token_id, scores);
}

void apply_warpers(const GenerationConfig& c, int64_t min_tokens_to_keep, std::span<float> scores, WarpScratch& s) {
  if (c.temperature != 1.0) temperature(c.temperature, scores);
  if (c.top_k != 0) top_k(c.top_k, min_tokens_to_keep, scores, s);
  if (c.top_p < 1.0) top_p(c.top_p, min_tokens_to_keep, scores, s);
  if (c.min_p) min_p(*c.min_p, min_tokens_to_keep, scores, s);
  if (c.typical_p < 1.0) typical_p(c.typical_p, min_tokens_to_keep, scores, s);
}

void log_softmax(std::span<float> scores) {
  float mx = kNegInf;
  for (float x : scores) mx = std::max(mx, x);
  float sum = 0;
  for (float x : scores) sum += std::exp(x - mx);
  const float lse = mx + std::log(sum);
  for (float& x : scores) x -= lse;
}

}  // namespace jetmoe::gen
