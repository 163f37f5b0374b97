// Every `generate` case of the golden fixtures (greedy, left-padded batches,
// repetition penalty, EOS stop, min_new_tokens, beam search with one or
// several returned sequences) through the C++ API: token ids must equal
// transformers' exactly; beam scores within 1e-5 relative. *_bf16compute
// cases come from transformers' bfloat16 arithmetic and are only reported.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "golden_fixture.h"
#include "jetmoe/generate.h"

namespace jetmoe::testing {
namespace {

GenerateInput input_of(const nlohmann::json& c) {
  GenerateInput in;
  in.input_ids = c.at("inputs").at("input_ids").get<std::vector<std::vector<int32_t>>>();
  if (c.at("inputs").contains("attention_mask"))
    in.attention_mask = c.at("inputs").at("attention_mask").get<std::vector<std::vector<int32_t>>>();
  return in;
}

class GoldenGenerate : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenGenerate, ReproducesTransformers) {
  const GoldenFixture fx(GetParam());
  auto lm = JetMoeForCausalLM::from_pretrained(fx.dir);
  int checked = 0;
  for (const auto& c : fx.cases) {
    if (c.at("kind") != "generate") continue;
    const std::string id = c.at("id");
    SCOPED_TRACE(fx.name + " " + id);
    const GenerationConfig config = GenerationConfig::from_json(c.at("generation_kwargs").dump(), id);
    const GenerateOutput out = generate(*lm, input_of(c), config);
    const auto want = c.at("results").at("sequences").get<std::vector<std::vector<int32_t>>>();
    if (id.ends_with("_bf16compute")) {
      std::cout << "[bf16-compute reference] " << fx.name << " " << id << ": sequences "
                << (out.sequences == want ? "equal" : "differ") << "\n";
      continue;
    }
    EXPECT_EQ(out.sequences, want);
    if (c.at("results").contains("sequences_scores")) {
      const auto scores = c.at("results").at("sequences_scores").get<std::vector<double>>();
      ASSERT_EQ(out.sequences_scores.size(), scores.size());
      for (size_t i = 0; i < scores.size(); ++i)
        EXPECT_NEAR(out.sequences_scores[i], scores[i], 1e-5 * std::abs(scores[i]) + 1e-6) << "hypothesis " << i;
    }
    ++checked;
  }
  EXPECT_GT(checked, 0) << "no generate cases in " << fx.name;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenGenerate,
                         ::testing::Values("tiny-tied-f32", "tiny-bf16", "tiny-sharded", "tiny-topall", "tiny-untied-top1", "small-llama-vocab"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace jetmoe::testing
