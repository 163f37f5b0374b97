#include "generate/logits_processors.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "generate/sampling.h"
#include "ops/softmax.h"

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
  // repeated id is penalised once: each copy writes the same value. The
  // gathered scores live per thread, room for a 4096-token context made at
  // once, so decode steps do not allocate as the sequence grows.
  thread_local std::vector<float> gathered;
  const float p = static_cast<float>(penalty);
  if (gathered.capacity() < ids.size()) gathered.reserve(std::max<size_t>(4096, 2 * ids.size()));
  gathered.clear();
  for (int32_t id : ids) {
    const auto i = static_cast<size_t>(id);
    gathered.push_back(i < scores.size() ? scores[i] : 0.0f);
  }
  for (size_t j = 0; j < ids.size(); ++j) {
    const auto i = static_cast<size_t>(ids[j]);
    if (i < scores.size()) scores[i] = gathered[j] < 0 ? gathered[j] * p : gathered[j] / p;
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

// The k-th largest score is found among the tokens near the maximum when at
// least k of them are there (a copy and selection over all 32000 took
// ~100 us a token, a third of the demo model's forward pass).
void top_k(int64_t k, int64_t min_tokens_to_keep, std::span<float> scores, WarpScratch& s) {
  k = std::min<int64_t>(std::max(k, min_tokens_to_keep), static_cast<int64_t>(scores.size()));
  if (k <= 0) return;
  const float mx = max_score(scores);
  const auto need = static_cast<size_t>(k);
  for (float drop = 8.0f;; drop *= 2.0f) {
    const float floor = drop > 64.0f ? kNegInf : mx - drop;
    indices_at_least(scores, floor, s.order);
    if (s.order.size() >= need || floor == kNegInf) break;
  }
  s.values.clear();
  for (int32_t i : s.order) s.values.push_back(scores[static_cast<size_t>(i)]);
  if (s.values.size() < need) s.values.assign(scores.begin(), scores.end());  // NaNs among them
  std::nth_element(s.values.begin(), s.values.begin() + (k - 1), s.values.end(), std::greater<float>());
  const float kth = s.values[static_cast<size_t>(k - 1)];
  // Ties with the k-th value survive, as in transformers (`scores < kth`).
  for (float& x : scores) x = x < kth ? kNegInf : x;
}

// transformers sorts the whole vocabulary ascending and drops the low tail
// whose cumulative probability stays <= 1 - p: token i goes iff the mass
// ranked above it reaches p (and it is not among the min_tokens_to_keep
// best). Sorting 32000 tokens took ~4 ms a token, more than the demo model's
// forward pass, so only the tokens around the cut are ranked. The
// candidates are the tokens within kNear of the maximum when they hold mass
// p (usually), else all; they go into kBuckets buckets of equal width by
// score, whole buckets above the cut's are kept and below it dropped, and
// only the cut's bucket is sorted.
void top_p(double p, int64_t min_tokens_to_keep, std::span<float> scores, WarpScratch& s) {
  constexpr float kNear = 8.0f;    // e^-8: tokens below hold < 0.03% of the maximum's mass each
  constexpr float kRange = 64.0f;  // all: below max - kRange (mass < e^-64 each) is the bottom bucket
  constexpr int32_t kBuckets = 4096;
  const size_t n = scores.size();
  const float mx = max_score(scores);
  if (!(mx > kNegInf)) return;  // nothing left to keep
  s.values.resize(n);           // each token's unnormalised probability
  const double target = p * ops::exp_shifted(scores.data(), static_cast<int64_t>(n), mx, s.values.data());
  const auto keep_min = static_cast<size_t>(std::max<int64_t>(min_tokens_to_keep, 0));

  std::vector<int32_t>& candidates = s.order;
  float floor = mx - kNear;
  indices_at_least(scores, floor, candidates);
  double near = 0;
  for (int32_t i : candidates) near += s.values[static_cast<size_t>(i)];
  float range = kNear;
  if (!(near >= target && candidates.size() >= keep_min)) {
    fill_order(n, candidates);
    floor = kNegInf;
    range = kRange;
  }
  // Monotone in the score: equal scores share a bucket, higher buckets rank higher.
  std::vector<int32_t>& bucket = s.buckets;
  bucket.resize(candidates.size());
  s.probs.assign(kBuckets, 0.0);
  std::vector<double>& bucket_mass = s.probs;
  const float bottom = mx - range, per_unit = static_cast<float>(kBuckets) / range;
  for (size_t j = 0; j < candidates.size(); ++j) {
    const auto i = static_cast<size_t>(candidates[j]);
    const float pos = (scores[i] - bottom) * per_unit;
    const int32_t b = pos >= static_cast<float>(kBuckets - 1) ? kBuckets - 1 : pos > 0.0f ? static_cast<int32_t>(pos) : 0;
    bucket[j] = b;
    bucket_mass[static_cast<size_t>(b)] += s.values[i];
  }
  // The cut's bucket: those above it hold less than the target, with it at
  // least the target.
  int32_t cut = kBuckets - 1;
  double above = 0;
  for (; cut > 0 && above + bucket_mass[static_cast<size_t>(cut)] < target; --cut)
    above += bucket_mass[static_cast<size_t>(cut)];
  size_t ranked_above = 0, ranked = 0;  // candidates above the cut's bucket, and in it
  for (int32_t b : bucket) {
    ranked_above += b > cut;
    ranked += b == cut;
  }
  if (ranked_above + ranked < keep_min) {
    // min_tokens_to_keep reaches below the cut's bucket: rank every candidate.
    cut = -1;
    ranked_above = 0;
    above = 0;
  }
  std::vector<int32_t>& ranked_ids = s.ranked;
  ranked_ids.clear();
  ranked_ids.reserve(candidates.size());  // grows with the candidates, as the buckets do
  for (size_t j = 0; j < candidates.size(); ++j)
    if (cut < 0 || bucket[j] == cut) ranked_ids.push_back(candidates[j]);
    else if (bucket[j] < cut) scores[static_cast<size_t>(candidates[j])] = kNegInf;
  // Descending; ties rank as the stable ascending sort leaves them (the
  // higher index above).
  std::sort(ranked_ids.begin(), ranked_ids.end(), [&](int32_t a, int32_t b) {
    const float x = scores[static_cast<size_t>(a)], y = scores[static_cast<size_t>(b)];
    return x > y || (x == y && a > b);
  });
  size_t r = 0;
  for (; r < ranked_ids.size(); ++r) {
    if (ranked_above + r >= keep_min && above >= target) break;
    above += s.values[static_cast<size_t>(ranked_ids[r])];
  }
  for (; r < ranked_ids.size(); ++r) scores[static_cast<size_t>(ranked_ids[r])] = kNegInf;
  if (floor > kNegInf)
    for (float& x : scores) x = x < floor ? kNegInf : x;  // a select the compiler vectorises
}

// A token goes when its probability is below p times the top one's (the
// min_tokens_to_keep best stay): a threshold on each token's mass relative
// to the maximum's, exp(0) = 1, so no softmax over the vocabulary is
// sorted unless fewer than min_tokens_to_keep pass it.
void min_p(double p, int64_t min_tokens_to_keep, std::span<float> scores, WarpScratch& s) {
  const size_t n = scores.size();
  const float mx = max_score(scores);
  if (!(mx > kNegInf)) return;
  s.values.resize(n);
  ops::exp_shifted(scores.data(), static_cast<int64_t>(n), mx, s.values.data());
  size_t passing = 0;
  for (float m : s.values) passing += m >= p;
  const auto keep = static_cast<size_t>(std::clamp<int64_t>(min_tokens_to_keep, 0, static_cast<int64_t>(n)));
  if (passing < keep) {
    // The `keep` best ranks (descending, ties lower index first) stay
    // whatever their probability: marked by a mass of 1.
    fill_order(n, s.order);
    std::nth_element(s.order.begin(), s.order.begin() + static_cast<std::ptrdiff_t>(keep - 1), s.order.end(),
                     [&](int32_t a, int32_t b) {
                       const float x = scores[static_cast<size_t>(a)], y = scores[static_cast<size_t>(b)];
                       return x > y || (x == y && a < b);
                     });
    for (size_t r = 0; r < keep; ++r) s.values[static_cast<size_t>(s.order[r])] = 1.0f;
  }
  for (size_t i = 0; i < n; ++i)
    if (s.values[i] < p) scores[i] = kNegInf;
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
