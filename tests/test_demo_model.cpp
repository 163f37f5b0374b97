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

}  // namespace
}  // namespace jetmoe
