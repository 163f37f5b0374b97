// The logits processors and warpers against hand-worked examples of
// transformers' semantics, and sampling against the processed distribution.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "generate/logits_processors.h"
#include "generate/sampling.h"
#include "jetmoe/error.h"
#include "ops/softmax.h"

namespace jetmoe::gen {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(LogitsProcessors, RepetitionPenaltyDividesPositiveMultipliesNegativeOncePerId) {
  std::vector<float> s = {2.0f, -2.0f, 3.0f, 1.0f};
  const std::vector<int32_t> ids = {0, 1, 0, 0};
  repetition_penalty(ids, 2.0, s);
  EXPECT_EQ(s, (std::vector<float>{1.0f, -4.0f, 3.0f, 1.0f}));
}

TEST(LogitsProcessors, NoRepeatNgramBansTheTokenThatWouldRepeatAnNgram) {
  std::vector<float> s(6, 0.0f);
  no_repeat_ngram(std::vector<int32_t>{1, 2, 3, 1, 2}, 3, s);  // "1 2" was followed by 3
  EXPECT_EQ(s[3], -kInf);
  for (int i : {0, 1, 2, 4, 5}) EXPECT_EQ(s[static_cast<size_t>(i)], 0.0f) << i;
  std::vector<float> t(6, 0.0f);
  no_repeat_ngram(std::vector<int32_t>{1, 2}, 3, t);  // shorter than n - 1 + 1: nothing to ban
  for (float x : t) EXPECT_EQ(x, 0.0f);
}

TEST(LogitsProcessors, MinNewTokensMasksEosUntilReached) {
  GenerationConfig c;
  c.eos_token_id = {2, 3};
  c.min_new_tokens = 2;
  std::vector<float> s(5, 1.0f);
  apply_processors(c, std::vector<int32_t>{7, 7, 7, 9}, /*prompt_length=*/3, s);  // one new token so far
  EXPECT_EQ(s[2], -kInf);
  EXPECT_EQ(s[3], -kInf);
  std::vector<float> t(5, 1.0f);
  apply_processors(c, std::vector<int32_t>{7, 7, 7, 9, 9}, 3, t);
  EXPECT_EQ(t[2], 1.0f);
}

TEST(LogitsWarpers, TopKKeepsTiesWithTheKthValue) {
  WarpScratch ws;
  std::vector<float> s = {1.0f, 5.0f, 3.0f, 3.0f, 0.0f};
  top_k(2, 1, s, ws);
  EXPECT_EQ(s, (std::vector<float>{-kInf, 5.0f, 3.0f, 3.0f, -kInf}));
}

TEST(LogitsWarpers, TopPKeepsTheSmallestSetReachingP) {
  WarpScratch ws;
  // probabilities 0.5, 0.25, 0.125, 0.125
  std::vector<float> s = {std::log(0.5f), std::log(0.25f), std::log(0.125f), std::log(0.125f)};
  std::vector<float> t = s;
  top_p(0.7, 1, t, ws);
  EXPECT_GT(t[0], -kInf);
  EXPECT_GT(t[1], -kInf);
  EXPECT_EQ(t[2], -kInf);
  EXPECT_EQ(t[3], -kInf);
  std::vector<float> u = s;
  top_p(0.01, 3, u, ws);  // min_tokens_to_keep wins
  EXPECT_EQ(std::count(u.begin(), u.end(), -kInf), 1);
}

// transformers' definitions, taken literally: top-k keeps what is not
// below the k-th largest score; top-p sorts every token ascending (stably),
// takes the softmax cumulative sum and drops the tokens whose sum stays <=
// 1 - p, keeping the min_tokens_to_keep best.
void top_k_by_definition(int64_t k, int64_t keep, std::vector<float>& s) {
  k = std::min<int64_t>(std::max(k, keep), static_cast<int64_t>(s.size()));
  std::vector<float> v = s;
  std::nth_element(v.begin(), v.begin() + (k - 1), v.end(), std::greater<float>());
  for (float& x : s)
    if (x < v[static_cast<size_t>(k - 1)]) x = -kInf;
}
void top_p_by_definition(double p, int64_t keep, std::vector<float>& s) {
  std::vector<int32_t> order(s.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return s[static_cast<size_t>(a)] < s[static_cast<size_t>(b)]; });
  const float mx = *std::max_element(s.begin(), s.end());
  std::vector<double> prob(s.size());
  double sum = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const float x = s[static_cast<size_t>(order[i])];
    prob[i] = x == -kInf ? 0.0 : std::exp(static_cast<double>(x) - mx);
    sum += prob[i];
  }
  double cum = 0;
  std::vector<float> out = s;
  for (size_t i = 0; i < s.size(); ++i) {
    cum += prob[i] / sum;
    if (cum <= 1.0 - p && static_cast<int64_t>(i) < static_cast<int64_t>(s.size()) - keep) out[static_cast<size_t>(order[i])] = -kInf;
  }
  s = out;
}

void min_p_by_definition(double p, int64_t keep, std::vector<float>& s) {
  const float mx = *std::max_element(s.begin(), s.end());
  std::vector<double> prob(s.size());
  double sum = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    prob[i] = s[i] == -kInf ? 0.0 : std::exp(static_cast<double>(s[i]) - mx);
    sum += prob[i];
  }
  for (double& x : prob) x /= sum;
  const double threshold = p * *std::max_element(prob.begin(), prob.end());
  std::vector<int32_t> order(s.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return s[static_cast<size_t>(a)] > s[static_cast<size_t>(b)]; });
  for (size_t r = static_cast<size_t>(keep); r < s.size(); ++r)
    if (prob[static_cast<size_t>(order[r])] < threshold) s[static_cast<size_t>(order[r])] = -kInf;
}

// Scores as a model gives them and as warpers leave them: peaked and flat,
// with ties, with -inf entries, at lengths that end inside vectors.
std::vector<std::vector<float>> warper_inputs() {
  std::vector<std::vector<float>> inputs;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (size_t n : {1, 2, 5, 37, 1000, 32000})
    for (float spread : {0.3f, 1.0f, 3.0f, 10.0f})
      for (int variant = 0; variant < 3; ++variant) {
        std::vector<float> v(n);
        for (float& x : v) x = normal(rng) * spread;
        if (variant == 1)  // ties: few distinct values
          for (float& x : v) x = std::round(x * 2.0f) / 2.0f;
        if (variant == 2 && n > 1)  // a third already removed, as by top-k
          for (size_t i = 0; i < n; i += 3) v[i] = -kInf;
        inputs.push_back(std::move(v));
      }
  return inputs;
}

// The fast warpers rank only the tokens near the cut (min-p: none unless
// min_tokens_to_keep asks); they must remove exactly what the definitions
// remove.
TEST(LogitsWarpers, TopKTopPAndMinPRemoveWhatTheirDefinitionsRemove) {
  WarpScratch ws;
  int checked = 0;
  for (const std::vector<float>& input : warper_inputs()) {
    for (int64_t k : {1, 3, 50, 2000})
      for (int64_t keep : {1, 7}) {
        std::vector<float> fast = input, slow = input;
        top_k(k, keep, fast, ws);
        top_k_by_definition(k, keep, slow);
        ASSERT_EQ(fast, slow) << "top_k " << k << " keep " << keep << " n=" << input.size();
        ++checked;
      }
    for (double p : {0.05, 0.37, 0.9, 0.99})
      for (int64_t keep : {0, 1, 7, 300}) {
        std::vector<float> fast = input, slow = input;
        top_p(p, keep, fast, ws);
        top_p_by_definition(p, keep, slow);
        ASSERT_EQ(fast, slow) << "top_p " << p << " keep " << keep << " n=" << input.size() << " first " << input[0];
        ++checked;
      }
    for (double p : {0.001, 0.05, 0.37, 0.9})
      for (int64_t keep : {1, 7, 300}) {
        std::vector<float> fast = input, slow = input;
        min_p(p, keep, fast, ws);
        min_p_by_definition(p, keep, slow);
        ASSERT_EQ(fast, slow) << "min_p " << p << " keep " << keep << " n=" << input.size();
        ++checked;
      }
  }
  EXPECT_EQ(checked, 72 * (8 + 16 + 12));
}

TEST(LogitsWarpers, MinPRemovesTokensBelowAFractionOfTheTop) {
  WarpScratch ws;
  std::vector<float> s = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  min_p(0.2, 1, s, ws);  // threshold 0.12
  EXPECT_GT(s[1], -kInf);
  EXPECT_EQ(s[2], -kInf);
}

TEST(LogitsWarpers, TypicalKeepsTokensClosestToTheEntropy) {
  WarpScratch ws;
  std::vector<float> s = {std::log(0.7f), std::log(0.2f), std::log(0.1f)};
  // Entropy 0.802 nats; surprisals 0.357, 1.609, 2.303 lie 0.445, 0.808,
  // 1.501 from it: token 0 is closest and reaches mass 0.5 alone.
  typical_p(0.5, 1, s, ws);
  EXPECT_GT(s[0], -kInf);
  EXPECT_EQ(s[1], -kInf);
  EXPECT_EQ(s[2], -kInf);
}

TEST(LogitsWarpers, LogSoftmaxNormalises) {
  std::vector<float> s = {1.0f, 2.0f, 3.0f};
  log_softmax(s);
  double total = 0;
  for (float x : s) total += std::exp(x);
  EXPECT_NEAR(total, 1.0, 1e-6);
  EXPECT_NEAR(s[2] - s[1], 1.0, 1e-6);
}

// Sampling after temperature 0.7, top-k 5 and top-p 0.9 must follow the
// distribution those warpers leave (chi-square at the 0.1% level).
TEST(Sampling, FrequenciesFollowTheWarpedDistribution) {
  const std::vector<float> logits = {2.0f, 1.5f, 1.2f, 1.0f, 0.4f, 0.3f, -0.5f, -1.0f};
  GenerationConfig c;
  c.do_sample = true;
  c.temperature = 0.7;
  c.top_k = 5;
  c.top_p = 0.9;
  // The expected distribution, worked out directly.
  std::vector<double> p(logits.size());
  double z = 0;
  for (size_t i = 0; i < 5; ++i) z += std::exp(logits[i] / 0.7);
  for (size_t i = 0; i < 5; ++i) p[i] = std::exp(logits[i] / 0.7) / z;
  // Ascending tail removal while its cumulative mass stays <= 0.1.
  double tail = 0;
  for (size_t i = 5; i-- > 0;) {
    if (tail + p[i] > 0.1) break;
    tail += p[i];
    p[i] = 0;
  }
  double kept = 0;
  for (double x : p) kept += x;
  for (double& x : p) x /= kept;

  WarpScratch ws;
  std::vector<float> s = logits;
  apply_warpers(c, 1, s, ws);
  SamplingRng rng(1234);
  std::vector<float> scratch;
  const int n = 200000;
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < n; ++i) ++counts[static_cast<size_t>(sample_from_scores(s, rng.uniform(), scratch))];
  double chi2 = 0;
  int dof = -1;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " was filtered out but sampled";
      continue;
    }
    const double e = p[i] * n;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
    ++dof;
  }
  ASSERT_EQ(dof, 3);  // four tokens survive: the worked example above
  EXPECT_LT(chi2, 16.27) << "chi-square with 3 degrees of freedom, 0.1% critical value";
}

// The vector search against the definition (first index of the largest
// value; a NaN counts as the largest, as in torch), across lengths that end
// inside and outside its 16-float chunks and values placed at chunk edges.
TEST(Sampling, ArgmaxIsTheFirstIndexOfTheLargestScore) {
  auto reference = [](const std::vector<float>& v) {
    for (size_t i = 0; i < v.size(); ++i)
      if (std::isnan(v[i])) return static_cast<int32_t>(i);
    size_t best = 0;
    for (size_t i = 1; i < v.size(); ++i)
      if (v[i] > v[best]) best = i;
    return static_cast<int32_t>(best);
  };
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> level(-3, 3);
  for (size_t n : {1, 5, 15, 16, 17, 31, 32, 33, 100, 32000}) {
    for (int trial = 0; trial < 20; ++trial) {
      // Few distinct values, so the maximum is usually tied.
      std::vector<float> v(n);
      for (float& x : v) x = static_cast<float>(level(rng));
      if (trial % 4 == 1) v[rng() % n] = -INFINITY;
      if (trial % 4 == 2) v[rng() % n] = INFINITY;
      if (trial % 4 == 3) v[rng() % n] = NAN;
      EXPECT_EQ(argmax(v), reference(v)) << "n=" << n << " trial " << trial;
    }
    std::vector<float> v(n, -INFINITY);
    EXPECT_EQ(argmax(v), 0) << "all -inf, n=" << n;
    v[n - 1] = 0.0f;
    EXPECT_EQ(argmax(v), static_cast<int32_t>(n - 1)) << "last, n=" << n;
    v.assign(n, 0.0f);
    v[0] = -0.0f;
    EXPECT_EQ(argmax(v), 0) << "-0 ties +0, n=" << n;
  }
}

// The draw's probabilities come from ops::exp_shifted: within 1e-6 of
// exp, exactly 0 for -inf and far-below scores, its sum returned.
TEST(Sampling, ExpShiftedIsExpAndItsSum) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> uni(-100.0f, 0.0f);
  for (int64_t n : {1, 7, 8, 9, 1000, 32001}) {
    std::vector<float> x(static_cast<size_t>(n)), out(x.size());
    for (float& v : x) v = uni(rng) + 3.0f;
    x[0] = -kInf;
    const double sum = ops::exp_shifted(x.data(), n, 3.0f, out.data());
    double expect_sum = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double d = static_cast<double>(x[i]) - 3.0;
      if (d < -87.0) {
        EXPECT_EQ(out[i], 0.0f) << x[i];
      } else {
        EXPECT_NEAR(out[i], std::exp(d), 1e-6 * std::exp(d)) << x[i];
      }
      expect_sum += out[i];
    }
    EXPECT_NEAR(sum, expect_sum, 1e-12 * expect_sum + 1e-300) << n;
  }
}

// Where u falls decides the token: the draw walks blocks of 64 tokens by
// their sums, then one block, so tokens at and across block edges come out
// as the cumulative probabilities say.
TEST(Sampling, DrawFollowsTheCumulativeMassAcrossBlocks) {
  std::vector<float> s(200, -kInf);
  for (int i : {0, 63, 64, 130, 199}) s[static_cast<size_t>(i)] = 0.0f;  // five equal tokens
  std::vector<float> scratch;
  const int expected[] = {0, 63, 64, 130, 199};
  for (int j = 0; j < 5; ++j) {
    EXPECT_EQ(sample_from_scores(s, (j + 0.5) / 5.0, scratch), expected[j]) << j;
  }
  EXPECT_EQ(sample_from_scores(s, 0.0, scratch), 0);
  EXPECT_EQ(sample_from_scores(s, std::nextafter(1.0, 0.0), scratch), 199);
  std::vector<float> none(100, -kInf);
  EXPECT_THROW(sample_from_scores(none, 0.5, scratch), Error);
  none[3] = NAN;
  EXPECT_THROW(sample_from_scores(none, 0.5, scratch), Error);
}

TEST(Sampling, SameSeedSameDraws) {
  SamplingRng a(7), b(7), c(8);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const double x = a.uniform();
    EXPECT_EQ(x, b.uniform());
    EXPECT_GE(x, 0.0);
    EXPECT_LT(x, 1.0);
    differs = differs || x != c.uniform();
  }
  EXPECT_TRUE(differs);
}

}  // namespace
}  // namespace jetmoe::gen
