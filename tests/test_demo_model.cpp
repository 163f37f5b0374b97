// The trained demo model (bf16 weights, learned routing) through the KV
// cache: greedy decoding one token at a time must reproduce transformers'
// greedy generations in reference.json token for token.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "jetmoe/model.h"

namespace jetmoe {
namespace {

TEST(DemoModel, GreedyDecodingThroughKVCacheMatchesTransformers) {
  const std::string dir = std::string(JETMOE_MODELS_DIR) + "/jetmoe-kjv-tiny";
  const nlohmann::json ref = nlohmann::json::parse(std::ifstream(dir + "/reference.json"));
  auto lm = JetMoeForCausalLM::from_pretrained(dir);
  ASSERT_FALSE(ref.at("greedy").empty());
  for (const auto& g : ref.at("greedy")) {
    SCOPED_TRACE(g.at("prompt").get<std::string>());
    const auto prompt = g.at("prompt_ids").get<std::vector<int32_t>>();
    const auto expected = g.at("output_ids").get<std::vector<int32_t>>();
    KVCache cache(lm->config(), 1, static_cast<int64_t>(expected.size()));
    std::vector<int32_t> ids = prompt;
    ModelInput step = ModelInput::from_ids({prompt});
    while (ids.size() < expected.size()) {
      const CausalLMOutput out = lm->forward(step, &cache, {}, nullptr, /*logits_last_only=*/true);
      const auto& logits = out.logits.data;
      const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      ids.push_back(next);
      step = ModelInput::from_ids({{next}});
    }
    EXPECT_EQ(ids, expected);
  }
}

// Small experts run one per thread when enough of them are active, big ones
// split over all threads: the logits must not depend on which happened.
TEST(DemoModel, LogitsDoNotDependOnTheThreadCount) {
  const std::string dir = std::string(JETMOE_MODELS_DIR) + "/jetmoe-kjv-tiny";
  const ModelInput input = ModelInput::from_ids({{1, 400, 17, 2001, 90, 5}, {1, 31, 32, 33, 34, 35}});
  std::vector<float> reference;
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE(threads);
    LoadOptions options;
    options.num_threads = threads;
    auto lm = JetMoeForCausalLM::from_pretrained(dir, options);
    KVCache cache(lm->config(), 2, 8);
    std::vector<float> logits = lm->forward(input, &cache).logits.data;
    const CausalLMOutput step = lm->forward(ModelInput::from_ids({{7}, {8}}), &cache);
    logits.insert(logits.end(), step.logits.data.begin(), step.logits.data.end());
    if (reference.empty()) reference = logits;
    EXPECT_EQ(logits, reference);
  }
}

}  // namespace
}  // namespace jetmoe
