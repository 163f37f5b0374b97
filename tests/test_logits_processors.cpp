// The logits processors and warpers against hand-worked examples of
// transformers' semantics, and sampling against the processed distribution.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "generate/logits_processors.h"
#include "generate/sampling.h"

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
  std::vector<double> scratch;
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
