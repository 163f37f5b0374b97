// chat, classify and perplexity on the command line: each must agree with
// the library call it stands for.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "demo_model.h"
#include "cli_runner.h"
#include "jetmoe/chat_template.h"
#include "jetmoe/perplexity.h"
#include "jetmoe/pipeline.h"

namespace jetmoe::testing {
namespace {

const std::string kZephyr = std::string(JETMOE_TEST_DATA) + "/chat_templates/zephyr.jinja";

TEST(ChatCommand, RepliesEqualThePipelineOnTheRenderedConversation) {
  ScopedTempDir dir;
  const CliResult r = run_cli(dir, "chat --chat-template " + kZephyr + " --system 'Be wise' --max-new-tokens 12",
                              "Who begat Enos?\n/reset\nAnd then?\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto pipe = TextGenerationPipeline::from_pretrained(kDemo);
  const ChatTemplate t = ChatTemplate::parse(slurp(kZephyr));
  GenerationConfig config = pipe.generation_config();
  config.max_new_tokens = 12;
  TextGenerationOptions opts;
  opts.return_full_text = false;
  opts.add_special_tokens = false;
  std::string want;
  // /reset forgets the first exchange: both questions start fresh.
  for (const char* q : {"Who begat Enos?", "And then?"}) {
    const std::string prompt = t.render({{"system", "Be wise"}, {"user", q}}, {true, "<s>", "</s>"});
    want += pipe(prompt, config, opts)[0].generated_text + "\n";
  }
  EXPECT_EQ(r.out, want);
}

TEST(ChatCommand, ModelWithoutTemplateIsAClearError) {
  ScopedTempDir dir;
  const CliResult r = run_cli(dir, "chat", "hi\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no chat_template"), std::string::npos) << r.err;
}

TEST(ClassifyCommand, LabelsFromId2LabelWithSoftmaxScores) {
  ScopedTempDir dir;
  std::ofstream(dir.file("config.json"))
      << R"({"architectures": ["JetMoeForSequenceClassification"], "vocab_size": 32000, "hidden_size": 32,
             "num_hidden_layers": 1, "num_key_value_heads": 2, "kv_channels": 8, "intermediate_size": 48,
             "num_local_experts": 4, "num_experts_per_tok": 2, "max_position_embeddings": 128, "num_labels": 3,
             "id2label": {"0": "negative", "1": "neutral", "2": "positive"}, "pad_token_id": 0})";
  const std::string model = dir.file("model");
  ASSERT_EQ(run_cli(dir, "init-random --config " + dir.file("config.json") + " --dtype f32 --seed 5 --output " + model).exit_code, 0);
  std::filesystem::copy_file(std::string(JETMOE_TEST_DATA) + "/tokenizer/llama2/tokenizer.json", model + "/tokenizer.json");
  const CliResult r = run_cli(dir, "classify --model " + model + " --json --text 'I love it' --text 'Terrible.'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int texts = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    ASSERT_EQ(j.at("labels").size(), 3u);
    double sum = 0, prev = 2;
    std::set<std::string> names;
    for (const auto& l : j.at("labels")) {
      sum += l.at("score").get<double>();
      EXPECT_LE(l.at("score").get<double>(), prev) << "best first";
      prev = l.at("score").get<double>();
      names.insert(l.at("label").get<std::string>());
    }
    EXPECT_NEAR(sum, 1.0, 1e-9);
    EXPECT_EQ(names, (std::set<std::string>{"negative", "neutral", "positive"}));
    ++texts;
  }
  EXPECT_EQ(texts, 2);
  // A causal-LM checkpoint is refused by name.
  const CliResult bad = run_cli(dir, "classify --text hi");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("not a classification checkpoint"), std::string::npos) << bad.err;
}

TEST(PerplexityCommand, EqualsTheLibraryOnTheSameTokens) {
  ScopedTempDir dir;
  const std::string text = slurp(kDemo + "/validation.txt").substr(0, 3000);
  std::ofstream(dir.file("text.txt"), std::ios::binary) << text;
  const CliResult r = run_cli(dir, "perplexity --file " + dir.file("text.txt") + " --context 64 --stride 32 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const Tokenizer tok = Tokenizer::from_pretrained(kDemo);
  const auto ids = tok.encode(text);
  const auto lm = JetMoeForCausalLM::from_pretrained(kDemo);
  const PerplexityResult want = sliding_window_perplexity(*lm, ids, 64, 32);
  EXPECT_EQ(j.at("num_tokens").get<int64_t>(), static_cast<int64_t>(ids.size()));
  EXPECT_EQ(j.at("num_windows").get<int64_t>(), want.num_windows);
  EXPECT_NEAR(j.at("ppl").get<double>(), want.ppl, 1e-9 * want.ppl);
  const CliResult missing = run_cli(dir, "perplexity --file " + dir.file("nope.txt"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("nope.txt"), std::string::npos);
}

}  // namespace
}  // namespace jetmoe::testing
