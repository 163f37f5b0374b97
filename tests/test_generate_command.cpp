// `jetmoe generate --input IN.json --output-ids` with the golden cases'
// generation flags must print transformers' sequences exactly; text prompts
// go through the tokenizer and the pipeline.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "golden_fixture.h"

namespace jetmoe::testing {
namespace {

std::string flags_of(const nlohmann::json& kwargs) {
  std::string f;
  for (const auto& [key, value] : kwargs.items()) {
    if (key == "use_cache" || key == "do_sample") continue;
    std::string flag = "--" + key;
    for (char& ch : flag)
      if (ch == '_') ch = '-';
    f += " " + flag + " " + (value.is_boolean() ? std::string(value.get<bool>() ? "true" : "false") : value.dump());
  }
  return f;
}

class GenerateCommand : public ::testing::TestWithParam<std::string> {};

TEST_P(GenerateCommand, OutputIdsReproduceTransformers) {
  const GoldenFixture fx(GetParam());
  ScopedTempDir dir;
  int checked = 0;
  for (const auto& c : fx.cases) {
    const std::string id = c.at("id");
    if (c.at("kind") != "generate" || id.ends_with("_bf16compute")) continue;
    SCOPED_TRACE(id);
    std::ofstream(dir.file("in.json")) << c.at("inputs").dump();
    const CliResult r = run_cli(dir, "generate --model " + fx.dir + " --input " + dir.file("in.json") + " --output-ids" +
                                         flags_of(c.at("generation_kwargs")));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto got = nlohmann::json::parse(r.out);
    EXPECT_EQ(got.at("sequences"), c.at("results").at("sequences"));
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GenerateCommand, ::testing::Values("tiny-bf16", "tiny-untied-top1", "small-llama-vocab"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

TEST(GenerateCommandText, DemoModelIsTheDefaultAndMatchesReference) {
  ScopedTempDir dir;
  const nlohmann::json ref = nlohmann::json::parse(slurp(std::string(JETMOE_MODELS_DIR) + "/jetmoe-kjv-tiny/reference.json"));
  const auto& g = ref.at("greedy").at(0);
  const size_t new_tokens = g.at("output_ids").size() - g.at("prompt_ids").size();
  // No --model: the demo model.
  const CliResult r = run_cli(dir, "generate --no-stream --prompt " + shell_quote(g.at("prompt")) + " --max-new-tokens " +
                                       std::to_string(new_tokens));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, g.at("text").get<std::string>() + "\n");
  // Streaming prints the same text.
  const CliResult s = run_cli(dir, "generate --stream --prompt " + shell_quote(g.at("prompt")) + " --max-new-tokens " +
                                       std::to_string(new_tokens));
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_EQ(s.out, r.out);
}

TEST(GenerateCommandText, BadRequestsAreClearErrors) {
  ScopedTempDir dir;
  CliResult r = run_cli(dir, "generate --prompt hi --temperature 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("temperature"), std::string::npos) << r.err;
  r = run_cli(dir, "generate");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--prompt"), std::string::npos) << r.err;
  r = run_cli(dir, "generate --model nobody/nothing --prompt hi");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Hugging Face cache"), std::string::npos) << r.err;
  std::ofstream(dir.file("bad.json")) << R"({"input_ids": [[1, 2], [3]]})";
  r = run_cli(dir, "generate --model " + golden_dir("tiny-tied-f32") + " --input " + dir.file("bad.json") + " --output-ids");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.json"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace jetmoe::testing
