// `jetmoe tokenize` / `jetmoe detokenize` end to end: the built binary on all
// reference cases, from the model folder (tokenizer.json) and from
// tokenizer.model alone, plus bad input lines.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "scoped_temp_dir.h"
#include "tokenizer_fixture.h"

namespace jetmoe::testing {
namespace {

class TokenizeCommand : public ::testing::Test {
 protected:
  // Runs `jetmoe <args>` with `input` on stdin; returns the exit status.
  int run(const std::string& args, const std::string& input) {
    std::ofstream(dir_.file("in.jsonl"), std::ios::binary) << input;
    const std::string cmd = std::string(JETMOE_CLI_PATH) + " " + args + " <" + dir_.file("in.jsonl") + " >" + dir_.file("out.jsonl") +
                            " 2>" + dir_.file("err.txt");
    const int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::vector<nlohmann::json> output() {
    std::ifstream in(dir_.file("out.jsonl"));
    std::vector<nlohmann::json> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
    return lines;
  }
  std::string errors() {
    std::ifstream in(dir_.file("err.txt"));
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  ScopedTempDir dir_;
};

TEST_F(TokenizeCommand, AllEncodeCasesFromFolderAndFromTokenizerModel) {
  const auto& cases = tokenizer_cases("encode");
  std::string input;
  for (const auto& c : cases) input += nlohmann::json{{"text", c.at("text")}}.dump() + "\n";
  for (const std::string& model : {llama2_dir(), llama2_dir() + "/tokenizer.model"}) {
    for (const bool no_bos : {false, true}) {
      ASSERT_EQ(run("tokenize --model " + model + (no_bos ? " --no-bos" : ""), input), 0) << errors();
      const auto out = output();
      ASSERT_EQ(out.size(), cases.size());
      for (size_t i = 0; i < cases.size(); ++i) {
        std::vector<int32_t> want = ids_of(cases[i].at("ids"));
        if (no_bos) want.erase(want.begin());
        EXPECT_EQ(ids_of(out[i].at("ids")), want) << model << ": " << cases[i].at("text").dump();
      }
    }
  }
}

TEST_F(TokenizeCommand, AllDecodeCasesFromFolderAndFromTokenizerModel) {
  const auto& cases = tokenizer_cases("decode");
  for (const std::string& model : {llama2_dir(), llama2_dir() + "/tokenizer.model"}) {
    for (const bool skip : {false, true}) {
      std::string input;
      std::vector<std::string> want;
      for (const auto& c : cases) {
        if (c.at("skip_special_tokens").get<bool>() != skip) continue;
        input += nlohmann::json{{"ids", c.at("ids")}}.dump() + "\n";
        want.push_back(c.at("text"));
      }
      ASSERT_EQ(run("detokenize --model " + model + (skip ? " --skip-special-tokens" : ""), input), 0) << errors();
      const auto out = output();
      ASSERT_EQ(out.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(out[i].at("text").get<std::string>(), want[i]) << model << " line " << i + 1;
    }
  }
}

TEST_F(TokenizeCommand, BadLinesNameTheLineNumber) {
  EXPECT_EQ(run("tokenize --model " + llama2_dir(), "{\"text\": \"ok\"}\n{\"txt\": 1}\n"), 1);
  EXPECT_NE(errors().find("stdin line 2"), std::string::npos) << errors();
  EXPECT_EQ(run("tokenize --model " + llama2_dir(), "{\"text\": \"ok\"}\n\n{not json\n"), 1);
  EXPECT_NE(errors().find("stdin line 3"), std::string::npos) << errors();
  EXPECT_EQ(run("detokenize --model " + llama2_dir(), "{\"ids\": [1, 2]}\n{\"ids\": [1, 32000]}\n"), 1);
  EXPECT_NE(errors().find("stdin line 2"), std::string::npos) << errors();
  EXPECT_NE(errors().find("32000"), std::string::npos) << errors();
  EXPECT_EQ(run("detokenize --model " + llama2_dir(), "{\"ids\": [1, \"x\"]}\n"), 1);
  EXPECT_NE(errors().find("stdin line 1"), std::string::npos) << errors();
  EXPECT_EQ(run("tokenize --model /no/such/folder", ""), 1);
  EXPECT_NE(errors().find("/no/such/folder"), std::string::npos) << errors();
}

TEST_F(TokenizeCommand, HelpDescribesTheFormat) {
  ASSERT_EQ(run("tokenize --help", ""), 0);
  std::ifstream in(dir_.file("out.jsonl"));
  std::ostringstream ss;
  ss << in.rdbuf();
  EXPECT_NE(ss.str().find("--no-bos"), std::string::npos);
  EXPECT_NE(ss.str().find("{\"text\""), std::string::npos);
}

}  // namespace
}  // namespace jetmoe::testing
