// GenerationConfig: transformers' defaults, JSON forms, validation errors,
// and sampling through generate() being reproducible per seed.
#include <gtest/gtest.h>

#include "golden_fixture.h"
#include "jetmoe/error.h"
#include "jetmoe/generate.h"
#include "jetmoe/generation_config.h"

namespace jetmoe {
namespace {

TEST(GenerationConfig, DefaultsAreTransformers) {
  const GenerationConfig c;
  EXPECT_EQ(c.max_length, 20);
  EXPECT_FALSE(c.max_new_tokens);
  EXPECT_FALSE(c.do_sample);
  EXPECT_EQ(c.top_k, 50);
  EXPECT_EQ(c.top_p, 1.0);
  EXPECT_EQ(c.num_beams, 1);
  EXPECT_EQ(c.early_stopping, EarlyStopping::False);
  EXPECT_NO_THROW(c.validate());
}

TEST(GenerationConfig, ReadsTransformersForms) {
  const auto c = GenerationConfig::from_json(
      R"({"eos_token_id": [2, 7], "early_stopping": "never", "max_new_tokens": 5, "min_p": null,
          "transformers_version": "4.44.0", "stop_strings": "END", "top_k": 0})");
  EXPECT_EQ(c.eos_token_id, (std::vector<int32_t>{2, 7}));
  EXPECT_EQ(c.early_stopping, EarlyStopping::Never);
  EXPECT_EQ(c.max_new_tokens, 5);
  EXPECT_EQ(c.stop_strings, std::vector<std::string>{"END"});
  EXPECT_EQ(c.top_k, 0);
  const auto single = GenerationConfig::from_json(R"({"eos_token_id": 2, "early_stopping": true})");
  EXPECT_EQ(single.eos_token_id, std::vector<int32_t>{2});
  EXPECT_EQ(single.early_stopping, EarlyStopping::True);
  // Round trip.
  const auto back = GenerationConfig::from_json(c.to_json());
  EXPECT_EQ(back.eos_token_id, c.eos_token_id);
  EXPECT_EQ(back.early_stopping, c.early_stopping);
  EXPECT_EQ(back.max_new_tokens, c.max_new_tokens);
}

TEST(GenerationConfig, ModelFolderTakesConfigSpecialTokensThenGenerationConfig) {
  const auto c = GenerationConfig::from_model_folder(std::string(JETMOE_MODELS_DIR) + "/jetmoe-kjv-tiny");
  EXPECT_EQ(c.eos_token_id, std::vector<int32_t>{2});
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_FALSE(c.do_sample);
}

void expect_error(const std::string& json, const std::string& fragment) {
  SCOPED_TRACE(json);
  try {
    GenerationConfig::from_json(json, "gen.json").validate();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(GenerationConfig, BadValuesNameTheField) {
  expect_error(R"({"temperature": 0})", "temperature");
  expect_error(R"({"temperature": "hot"})", "temperature");
  expect_error(R"({"top_p": 1.5})", "top_p");
  expect_error(R"({"top_k": -1})", "top_k");
  expect_error(R"({"max_new_tokens": 0})", "max_new_tokens");
  expect_error(R"({"num_beams": 0})", "num_beams");
  expect_error(R"({"num_beams": 2, "num_return_sequences": 3})", "num_return_sequences");
  expect_error(R"({"num_return_sequences": 2})", "num_return_sequences");
  expect_error(R"({"early_stopping": "sometimes"})", "early_stopping");
  expect_error(R"({"eos_token_id": [-1]})", "eos_token_id");
  expect_error(R"({"repetition_penalty": -1})", "repetition_penalty");
  expect_error(R"({"do_sample": true, "num_beams": 2})", "beam sampling");
  expect_error(R"([1, 2])", "JSON object");
  expect_error(R"({"max_length": )", "not valid JSON");
}

class GenerateApi : public ::testing::Test {
 protected:
  void SetUp() override { lm = JetMoeForCausalLM::from_pretrained(testing::golden_dir("tiny-tied-f32")); }
  std::unique_ptr<JetMoeForCausalLM> lm;
};

TEST_F(GenerateApi, SamplingIsReproducibleForASeed) {
  GenerationConfig c;
  c.do_sample = true;
  c.max_new_tokens = 12;
  c.top_k = 0;
  c.num_return_sequences = 3;
  c.seed = 42;
  const GenerateInput in{{{1, 5, 9}}, {}};
  const auto a = generate(*lm, in, c);
  const auto b = generate(*lm, in, c);
  EXPECT_EQ(a.sequences, b.sequences);
  ASSERT_EQ(a.sequences.size(), 3u);
  // Three draws of 12 tokens from a random model's near-uniform
  // distribution are not all the same.
  EXPECT_FALSE(a.sequences[0] == a.sequences[1] && a.sequences[1] == a.sequences[2]);
  c.seed = 43;
  EXPECT_NE(generate(*lm, in, c).sequences, a.sequences);
}

TEST_F(GenerateApi, BatchedRowsEqualSingleRows) {
  GenerationConfig c;
  c.max_new_tokens = 10;
  c.eos_token_id = {2};
  const std::vector<std::vector<int32_t>> prompts = {{1, 17, 40, 8, 99}, {1, 3}, {1, 250, 6}};
  const GenerateOutput batched = generate(*lm, left_pad(prompts, 0), c);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const GenerateOutput single = generate(*lm, GenerateInput{{prompts[i]}, {}}, c);
    const auto& row = batched.sequences[i];
    const size_t pad = 5 - prompts[i].size();
    const std::vector<int32_t> tail(row.begin() + static_cast<std::ptrdiff_t>(pad), row.begin() + static_cast<std::ptrdiff_t>(pad + single.sequences[0].size()));
    EXPECT_EQ(tail, single.sequences[0]) << "row " << i;
  }
}

TEST_F(GenerateApi, StreamsEveryNewTokenAndHonoursShouldStop) {
  GenerationConfig c;
  c.max_new_tokens = 8;
  std::vector<int32_t> streamed;
  GenerateCallbacks cb;
  cb.on_token = [&](int64_t row, int32_t t) {
    EXPECT_EQ(row, 0);
    streamed.push_back(t);
  };
  cb.should_stop = [](int64_t, std::span<const int32_t> fresh) { return fresh.size() == 3; };
  const GenerateOutput out = generate(*lm, GenerateInput{{{1, 5, 9}}, {}}, c, cb);
  ASSERT_EQ(out.sequences[0].size(), 6u);
  EXPECT_EQ(streamed, std::vector<int32_t>(out.sequences[0].begin() + 3, out.sequences[0].end()));
  EXPECT_EQ(out.finish_reasons[0], GenerateOutput::FinishReason::StopString);
}

TEST_F(GenerateApi, BadInputsAreClearErrors) {
  GenerationConfig c;
  c.max_new_tokens = 4;
  EXPECT_THROW(generate(*lm, GenerateInput{{}, {}}, c), Error);
  EXPECT_THROW(generate(*lm, GenerateInput{{{1, 2}, {1}}, {}}, c), Error);
  EXPECT_THROW(generate(*lm, GenerateInput{{{1, 100000}}, {}}, c), Error);
  EXPECT_THROW(generate(*lm, GenerateInput{{{1, 2}}, {{0, 0}}}, c), Error);
  c.max_new_tokens = 100000;
  EXPECT_THROW(generate(*lm, GenerateInput{{{1, 2}}, {}}, c), Error);
}

}  // namespace
}  // namespace jetmoe
