// JetMoeConfig: transformers' defaults, parsing rules and the to_json round trip.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "jetmoe/config.h"
#include "jetmoe/error.h"

namespace jetmoe {
namespace {

namespace fs = std::filesystem;

// Every field of the struct, compared one by one.
void expect_same_config(const JetMoeConfig& a, const JetMoeConfig& b) {
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.num_key_value_heads, b.num_key_value_heads);
  EXPECT_EQ(a.kv_channels, b.kv_channels);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.activation_function, b.activation_function);
  EXPECT_EQ(a.num_local_experts, b.num_local_experts);
  EXPECT_EQ(a.num_experts_per_tok, b.num_experts_per_tok);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(a.aux_loss_coef, b.aux_loss_coef);
  EXPECT_EQ(a.output_router_logits, b.output_router_logits);
  EXPECT_EQ(a.use_cache, b.use_cache);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_id, b.eos_token_id);
  EXPECT_EQ(a.pad_token_id, b.pad_token_id);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.initializer_range, b.initializer_range);
  EXPECT_EQ(a.attention_dropout, b.attention_dropout);
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.architectures, b.architectures);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
  EXPECT_EQ(a.num_labels, b.num_labels);
  EXPECT_EQ(a.problem_type, b.problem_type);
  EXPECT_EQ(a.id2label, b.id2label);
}

TEST(Config, EmptyJsonGivesTransformersDefaults) {
  const JetMoeConfig c = JetMoeConfig::from_json("{}");
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.num_hidden_layers, 12);
  EXPECT_EQ(c.num_key_value_heads, 16);
  EXPECT_EQ(c.kv_channels, 128);
  EXPECT_EQ(c.intermediate_size, 5632);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_EQ(c.activation_function, "silu");
  EXPECT_EQ(c.num_local_experts, 8);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_DOUBLE_EQ(c.aux_loss_coef, 0.01);
  EXPECT_FALSE(c.output_router_logits);
  EXPECT_TRUE(c.use_cache);
  ASSERT_TRUE(c.bos_token_id.has_value());
  EXPECT_EQ(*c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, (std::vector<int64_t>{2}));
  EXPECT_FALSE(c.pad_token_id.has_value());
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.initializer_range, 0.01);
  EXPECT_DOUBLE_EQ(c.attention_dropout, 0.0);
  EXPECT_EQ(c.model_type, "jetmoe");
  EXPECT_TRUE(c.architectures.empty());
  EXPECT_TRUE(c.torch_dtype.empty());
  EXPECT_EQ(c.num_labels, 2);
  EXPECT_TRUE(c.problem_type.empty());
  EXPECT_TRUE(c.id2label.empty());
}

TEST(Config, NumAttentionHeadsIsDerived) {
  JetMoeConfig c = JetMoeConfig::from_json(R"({"num_key_value_heads": 3, "num_experts_per_tok": 2, "num_attention_heads": 99})");
  EXPECT_EQ(c.num_attention_heads, 6);
  c = JetMoeConfig::from_json(R"({"num_key_value_heads": 5, "num_experts_per_tok": 4, "num_local_experts": 4})");
  EXPECT_EQ(c.num_attention_heads, 20);
  c = JetMoeConfig::from_json(R"({"num_key_value_heads": 4, "num_attention_heads": 4})");
  EXPECT_EQ(c.num_attention_heads, 8);  // default top-2
}

TEST(Config, EosTokenIdForms) {
  EXPECT_EQ(JetMoeConfig::from_json(R"({"eos_token_id": [2, 5, 7]})").eos_token_id, (std::vector<int64_t>{2, 5, 7}));
  EXPECT_EQ(JetMoeConfig::from_json(R"({"eos_token_id": 11})").eos_token_id, (std::vector<int64_t>{11}));
  EXPECT_TRUE(JetMoeConfig::from_json(R"({"eos_token_id": []})").eos_token_id.empty());
  EXPECT_TRUE(JetMoeConfig::from_json(R"({"eos_token_id": null})").eos_token_id.empty());
  EXPECT_THROW(JetMoeConfig::from_json(R"({"eos_token_id": "2"})"), Error);
  EXPECT_THROW(JetMoeConfig::from_json(R"({"eos_token_id": [2, "x"]})"), Error);
}

TEST(Config, Id2LabelSetsNumLabels) {
  JetMoeConfig c = JetMoeConfig::from_json(R"({"id2label": {"0": "neg", "1": "neu", "2": "pos"}, "num_labels": 7})");
  EXPECT_EQ(c.num_labels, 3);
  ASSERT_EQ(c.id2label.size(), 3u);
  EXPECT_EQ(c.id2label.at(0), "neg");
  EXPECT_EQ(c.id2label.at(1), "neu");
  EXPECT_EQ(c.id2label.at(2), "pos");

  c = JetMoeConfig::from_json(R"({"id2label": {"0": "only"}})");
  EXPECT_EQ(c.num_labels, 1);

  c = JetMoeConfig::from_json(R"({"num_labels": 5})");
  EXPECT_EQ(c.num_labels, 5);
  EXPECT_TRUE(c.id2label.empty());

  EXPECT_THROW(JetMoeConfig::from_json(R"({"id2label": {"zero": "a"}})"), Error);
}

TEST(Config, UnknownKeysIgnored) {
  const JetMoeConfig c = JetMoeConfig::from_json(
      R"({"hidden_size": 64, "transformers_version": "4.44.0", "some_future_field": {"a": [1, 2]},
          "_name_or_path": "x", "label2id": {"a": 0}, "vocab_size": 100})");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.vocab_size, 100);
  expect_same_config(c, JetMoeConfig::from_json(R"({"hidden_size": 64, "vocab_size": 100})"));
}

TEST(Config, NullBosTokenClears) {
  JetMoeConfig c = JetMoeConfig::from_json(R"({"bos_token_id": null})");
  EXPECT_FALSE(c.bos_token_id.has_value());
  c = JetMoeConfig::from_json(R"({"bos_token_id": 0})");
  ASSERT_TRUE(c.bos_token_id.has_value());
  EXPECT_EQ(*c.bos_token_id, 0);
  c = JetMoeConfig::from_json(R"({"pad_token_id": 3})");
  ASSERT_TRUE(c.pad_token_id.has_value());
  EXPECT_EQ(*c.pad_token_id, 3);
  c = JetMoeConfig::from_json(R"({"pad_token_id": null})");
  EXPECT_FALSE(c.pad_token_id.has_value());
}

TEST(Config, WrongTypesAndInvalidValuesThrow) {
  EXPECT_THROW(JetMoeConfig::from_json(R"({"hidden_size": "64"})"), Error);
  EXPECT_THROW(JetMoeConfig::from_json(R"({"hidden_size": 64.5})"), Error);
  EXPECT_THROW(JetMoeConfig::from_json(R"({"tie_word_embeddings": 1})"), Error);
  EXPECT_THROW(JetMoeConfig::from_json(R"({"num_experts_per_tok": 9})"), Error);
  EXPECT_THROW(JetMoeConfig::from_json(R"({"kv_channels": 7})"), Error);
  EXPECT_THROW(JetMoeConfig::from_json(R"({"model_type": "llama"})"), Error);
  EXPECT_THROW(JetMoeConfig::from_json(R"({"activation_function": "nope"})"), Error);
  EXPECT_THROW(JetMoeConfig::from_json(R"([1, 2])"), Error);
  EXPECT_THROW(JetMoeConfig::from_json("{"), Error);
  // rope_theta may be written as an integer.
  EXPECT_DOUBLE_EQ(JetMoeConfig::from_json(R"({"rope_theta": 500000})").rope_theta, 500000.0);
}

TEST(Config, ToJsonRoundTripsEveryField) {
  JetMoeConfig a;
  a.vocab_size = 1000;
  a.hidden_size = 96;
  a.num_hidden_layers = 3;
  a.num_key_value_heads = 4;
  a.kv_channels = 24;
  a.intermediate_size = 80;
  a.max_position_embeddings = 256;
  a.activation_function = "gelu";
  a.num_local_experts = 6;
  a.num_experts_per_tok = 3;
  a.num_attention_heads = 12;
  a.aux_loss_coef = 0.0375;
  a.output_router_logits = true;
  a.use_cache = false;
  a.bos_token_id = 5;
  a.eos_token_id = {7, 8, 9};
  a.pad_token_id = 3;
  a.tie_word_embeddings = false;
  a.rope_theta = 500000.0;
  a.rms_norm_eps = 1.0 / 3.0 * 1e-5;  // not exactly representable in short decimal
  a.initializer_range = 0.02;
  a.attention_dropout = 0.1;
  a.architectures = {"JetMoeForSequenceClassification"};
  a.torch_dtype = "bfloat16";
  a.num_labels = 3;
  a.problem_type = "multi_label_classification";
  a.id2label = {{0, "a"}, {1, "b"}, {2, "c"}};
  const std::string text = a.to_json();
  expect_same_config(a, JetMoeConfig::from_json(text));
  // The text is a config.json transformers reads: num_attention_heads is written.
  const nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_EQ(j.at("num_attention_heads").get<int64_t>(), 12);
  EXPECT_EQ(j.at("model_type").get<std::string>(), "jetmoe");

  // Defaults, and the other optional forms: no bos, one eos, no pad,
  // num_labels without id2label.
  JetMoeConfig b;
  b.bos_token_id.reset();
  b.eos_token_id = {4};
  b.num_labels = 5;
  b.architectures = {"JetMoeForCausalLM"};
  expect_same_config(b, JetMoeConfig::from_json(b.to_json()));

  JetMoeConfig c;
  c.eos_token_id = {};
  c.architectures = {"JetMoeModel"};
  c.problem_type = "regression";
  c.num_labels = 1;
  expect_same_config(c, JetMoeConfig::from_json(c.to_json()));

  // Empty architectures are written as the causal-LM class.
  JetMoeConfig d;
  const JetMoeConfig d2 = JetMoeConfig::from_json(d.to_json());
  EXPECT_EQ(d2.architectures, (std::vector<std::string>{"JetMoeForCausalLM"}));
  d.architectures = d2.architectures;
  expect_same_config(d, d2);
}

TEST(Config, GoldenConfigFilesParse) {
  const fs::path golden = fs::path(JETMOE_TEST_DATA) / "golden";
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(golden)) {
    const fs::path file = entry.path() / "config.json";
    if (!entry.is_directory() || !fs::exists(file)) continue;
    ++seen;
    SCOPED_TRACE(file.string());
    std::ifstream in(file);
    const nlohmann::json j = nlohmann::json::parse(in);
    const JetMoeConfig c = JetMoeConfig::from_file(file.string());
    EXPECT_EQ(c.vocab_size, j.at("vocab_size").get<int64_t>());
    EXPECT_EQ(c.hidden_size, j.at("hidden_size").get<int64_t>());
    EXPECT_EQ(c.num_hidden_layers, j.at("num_hidden_layers").get<int64_t>());
    EXPECT_EQ(c.num_key_value_heads, j.at("num_key_value_heads").get<int64_t>());
    EXPECT_EQ(c.kv_channels, j.at("kv_channels").get<int64_t>());
    EXPECT_EQ(c.intermediate_size, j.at("intermediate_size").get<int64_t>());
    EXPECT_EQ(c.num_local_experts, j.at("num_local_experts").get<int64_t>());
    EXPECT_EQ(c.num_experts_per_tok, j.at("num_experts_per_tok").get<int64_t>());
    EXPECT_EQ(c.num_attention_heads, c.num_key_value_heads * c.num_experts_per_tok);
    EXPECT_EQ(c.tie_word_embeddings, j.value("tie_word_embeddings", true));
    EXPECT_DOUBLE_EQ(c.rms_norm_eps, j.value("rms_norm_eps", 1e-6));
    EXPECT_DOUBLE_EQ(c.rope_theta, j.value("rope_theta", 10000.0));
    EXPECT_EQ(c.activation_function, j.value("activation_function", std::string("silu")));
    EXPECT_EQ(c.architectures, j.value("architectures", std::vector<std::string>{}));
    EXPECT_EQ(c.torch_dtype, j.value("torch_dtype", std::string()));
    EXPECT_EQ(c.problem_type, j.value("problem_type", std::string()));
    if (j.contains("id2label")) {
      EXPECT_EQ(c.num_labels, static_cast<int64_t>(j["id2label"].size()));
      for (auto it = j["id2label"].begin(); it != j["id2label"].end(); ++it)
        EXPECT_EQ(c.id2label.at(std::stoll(it.key())), it->get<std::string>());
    } else {
      EXPECT_EQ(c.num_labels, j.value("num_labels", int64_t{2}));
    }
    if (j.contains("pad_token_id") && !j["pad_token_id"].is_null()) {
      ASSERT_TRUE(c.pad_token_id.has_value());
      EXPECT_EQ(*c.pad_token_id, j["pad_token_id"].get<int64_t>());
    } else {
      EXPECT_FALSE(c.pad_token_id.has_value());
    }
    // And the parsed config survives its own to_json.
    expect_same_config(c, JetMoeConfig::from_json(c.to_json()));
  }
  EXPECT_GE(seen, 5);
}

TEST(Config, FromFileMissingThrows) {
  EXPECT_THROW(JetMoeConfig::from_file(std::string(JETMOE_TEST_DATA) + "/no/such/config.json"), Error);
}

}  // namespace
}  // namespace jetmoe
