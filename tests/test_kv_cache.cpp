// Feeding a sequence in chunks through the KV cache must give the same
// outputs as one full pass (within 1e-5), for padded batches too.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>

#include "golden_fixture.h"
#include "jetmoe/error.h"
#include "jetmoe/model.h"

namespace jetmoe::testing {
namespace {

ModelInput slice(const ModelInput& full, int64_t start, int64_t len, bool with_mask) {
  ModelInput part;
  part.batch_size = full.batch_size;
  part.seq_len = len;
  const int64_t T = full.seq_len;
  for (int64_t b = 0; b < full.batch_size; ++b) {
    for (int64_t t = start; t < start + len; ++t) {
      part.input_ids.push_back(full.input_ids[static_cast<size_t>(b * T + t)]);
      if (!full.position_ids.empty()) part.position_ids.push_back(full.position_ids[static_cast<size_t>(b * T + t)]);
    }
    if (with_mask && !full.attention_mask.empty())
      for (int64_t t = 0; t < start + len; ++t) part.attention_mask.push_back(full.attention_mask[static_cast<size_t>(b * T + t)]);
  }
  return part;
}

// Max |a - b| over [B, T, X] tensors where mask [B, T] is 1; `b_cols` is
// the T of b (the chunk), placed at column `offset` of a. With `relative`,
// each difference is divided by max(1, |a|).
double diff(const Tensor& a, const Tensor& b, const std::vector<int32_t>& mask, int64_t B, int64_t T, int64_t offset, int64_t b_cols,
            bool relative = false) {
  const int64_t X = a.numel() / (B * T);
  double worst = 0.0;
  for (int64_t r = 0; r < B; ++r)
    for (int64_t t = 0; t < b_cols; ++t) {
      if (!mask.empty() && !mask[static_cast<size_t>(r * T + offset + t)]) continue;
      for (int64_t i = 0; i < X; ++i) {
        const double av = a.data[static_cast<size_t>((r * T + offset + t) * X + i)];
        const double d = std::abs(av - b.data[static_cast<size_t>((r * b_cols + t) * X + i)]) /
                         (relative ? std::max(1.0, std::abs(av)) : 1.0);
        worst = std::isnan(d) ? INFINITY : std::max(worst, d);
      }
    }
  return worst;
}

void expect_chunked_equals_full(const JetMoeForCausalLM& lm, const ModelInput& full, const std::vector<int64_t>& chunks,
                                bool mask_every_step) {
  ForwardOptions opts;
  opts.output_hidden_states = true;
  opts.output_router_logits = true;
  const CausalLMOutput ref = lm.forward(full, nullptr, opts);
  const int64_t B = full.batch_size, T = full.seq_len;
  KVCache cache(lm.config(), B, T);
  int64_t start = 0;
  for (int64_t c : chunks) {
    const ModelInput part = slice(full, start, c, mask_every_step || start == 0);
    const CausalLMOutput out = lm.forward(part, &cache, opts);
    // A chunk's matmuls have fewer rows than the full pass's, and the kernels
    // pick their tiles (so their summation order) by row count: logits of
    // magnitude 10 differ by up to ~15 ulps, hence relative to magnitude.
    EXPECT_LE(diff(ref.logits, out.logits, full.attention_mask, B, T, start, c, true), 1e-5)
        << "logits, chunk at " << start;
    for (size_t i = 0; i < out.model.hidden_states.size(); ++i)
      EXPECT_LE(diff(ref.model.hidden_states[i], out.model.hidden_states[i], full.attention_mask, B, T, start, c), 1e-5)
          << "hidden_states." << i << ", chunk at " << start;
    for (size_t i = 0; i < out.model.router_logits.size(); ++i)
      EXPECT_LE(diff(ref.model.router_logits[i], out.model.router_logits[i], full.attention_mask, B, T, start, c), 1e-5)
          << "router_logits." << i << ", chunk at " << start;
    start += c;
  }
  EXPECT_EQ(cache.length, T);
}

TEST(KVCache, ChunkedEqualsFullOnGoldenFixtures) {
  for (const char* name : {"tiny-tied-f32", "tiny-bf16", "tiny-untied-top1", "tiny-topall"}) {
    SCOPED_TRACE(name);
    const GoldenFixture fx(name);
    auto lm = JetMoeForCausalLM::from_pretrained(fx.dir);
    for (const auto& c : fx.cases) {
      if (c.at("kind") != "forward_cached") continue;
      const ModelInput full = model_input(c.at("full"));
      const int64_t T = full.seq_len;
      SCOPED_TRACE(c.at("id").get<std::string>());
      expect_chunked_equals_full(*lm, full, {T}, true);
      expect_chunked_equals_full(*lm, full, std::vector<int64_t>(static_cast<size_t>(T), 1), true);
      expect_chunked_equals_full(*lm, full, {3, T - 4, 1}, true);
      // Later steps may leave the mask out: the cache remembers it.
      expect_chunked_equals_full(*lm, full, {T - 3, 1, 1, 1}, false);
    }
  }
}

TEST(KVCache, ChunkedEqualsFullOnTrainedDemoModel) {
  auto lm = JetMoeForCausalLM::from_pretrained(std::string(JETMOE_MODELS_DIR) + "/jetmoe-kjv-tiny");
  // "In the beginning God created the heaven and the earth." style ids, two
  // rows, the second left-padded.
  std::vector<std::vector<int32_t>> rows = {
      {1, 512, 278, 6763, 4177, 2825, 278, 18356, 322, 278, 8437, 29889, 1126, 278, 8437, 471, 1728, 883, 29892, 322},
      {0, 0, 0, 0, 1, 1126, 4177, 1497, 29892, 2803, 727, 367, 3578, 29901, 322, 727, 471, 3578, 29889, 1126}};
  ModelInput full = ModelInput::from_ids(rows);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 20; ++t) full.attention_mask.push_back(b == 1 && t < 4 ? 0 : 1);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 20; ++t) full.position_ids.push_back(b == 1 ? std::max<int32_t>(0, static_cast<int32_t>(t) - 4) : static_cast<int32_t>(t));
  expect_chunked_equals_full(*lm, full, {8, 1, 1, 1, 1, 8}, true);
  expect_chunked_equals_full(*lm, full, {16, 1, 1, 1, 1}, false);
}

// A 16-bit cache rounds every key and value once; on the trained model the
// logits of 128 validation tokens (64 prefilled, 64 decoded one at a time)
// stay close to the f32 cache's and pick the same next token. Where rounding
// flips a near-tied router choice, a position's logits jump (0.4 seen with
// F16) and the positions after it inherit a little of that, so the bound is
// on the mean over positions of each position's largest difference.
TEST(KVCache, SixteenBitCacheStaysCloseToF32OnTrainedDemoModel) {
  auto lm = JetMoeForCausalLM::from_pretrained(std::string(JETMOE_MODELS_DIR) + "/jetmoe-kjv-tiny");
  std::ifstream f(std::string(JETMOE_TEST_DATA) + "/kjv-validation-ids.txt");
  std::string line;
  std::getline(f, line);  // comment
  std::vector<int32_t> ids;
  for (int32_t id; ids.size() < 128 && f >> id;) ids.push_back(id);
  ASSERT_EQ(ids.size(), 128u);
  const int64_t T = 128, V = lm->config().vocab_size;
  auto run = [&](DType dtype) {
    KVCache cache(lm->config(), 1, T, dtype);
    std::vector<float> logits;
    const CausalLMOutput first = lm->forward(ModelInput::from_ids({{ids.begin(), ids.begin() + 64}}), &cache);
    logits = first.logits.data;
    for (int64_t t = 64; t < T; ++t) {
      const CausalLMOutput step = lm->forward(ModelInput::from_ids({{ids[static_cast<size_t>(t)]}}), &cache);
      logits.insert(logits.end(), step.logits.data.begin(), step.logits.data.end());
    }
    return logits;
  };
  const std::vector<float> exact = run(DType::F32);
  for (DType dtype : {DType::F16, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const std::vector<float> got = run(dtype);
    double worst = 0, mean = 0;
    int agree = 0;
    for (int64_t t = 0; t < T; ++t) {
      const float* a = &exact[static_cast<size_t>(t * V)];
      const float* b = &got[static_cast<size_t>(t * V)];
      double position = 0;
      for (int64_t i = 0; i < V; ++i) position = std::max(position, std::abs(static_cast<double>(a[i]) - b[i]));
      worst = std::max(worst, position);
      mean += position / static_cast<double>(T);
      agree += std::max_element(a, a + V) - a == std::max_element(b, b + V) - b;
    }
    std::cout << dtype_name(dtype) << " KV cache: |logit - f32| max " << worst << ", mean of per-position max " << mean
              << ", top-1 agreement " << agree << "/" << T << "\n";
    EXPECT_GT(worst, 0.0);  // the cache really holds rounded values
    EXPECT_LE(mean, 0.02);
    EXPECT_GE(agree, T - 2);
  }
}

TEST(KVCache, UnsupportedDtypeIsAnError) {
  auto lm = JetMoeForCausalLM::from_pretrained(std::string(JETMOE_MODELS_DIR) + "/jetmoe-kjv-tiny");
  try {
    KVCache cache(lm->config(), 1, 4, DType::I8);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected F32, F16 or BF16"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_kv_dtype("q8_0"), Error);
  EXPECT_EQ(parse_kv_dtype("f16"), DType::F16);
}

TEST(KVCache, CacheTooSmallIsAnError) {
  auto lm = JetMoeForCausalLM::from_pretrained(golden_dir("tiny-tied-f32"));
  KVCache cache(lm->config(), 1, 4);
  lm->forward(ModelInput::from_ids({{1, 2, 3}}), &cache);
  EXPECT_THROW(lm->forward(ModelInput::from_ids({{4, 5}}), &cache), Error);
  EXPECT_EQ(cache.length, 3) << "a refused step must leave the cache as it was";
}

// The cache keeps each KV head's positions together, so a cache with the
// same kv width split into other heads would be read wrongly: refused.
TEST(KVCache, CacheForAnotherHeadSplitIsAnError) {
  auto lm = JetMoeForCausalLM::from_pretrained(golden_dir("tiny-tied-f32"));
  JetMoeConfig other = lm->config();
  other.num_key_value_heads *= 2;
  other.kv_channels /= 2;
  KVCache cache(other, 1, 8);
  EXPECT_THROW(lm->forward(ModelInput::from_ids({{1, 2, 3}}), &cache), Error);
}

}  // namespace
}  // namespace jetmoe::testing
