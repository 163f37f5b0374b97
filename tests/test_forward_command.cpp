// `jetmoe forward` end to end: the command users and checks compare
// implementations with. Runs the built binary on golden cases and compares
// the tensors it writes with transformers' values.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "golden_fixture.h"
#include "scoped_temp_dir.h"
#include "jetmoe/error.h"

namespace jetmoe::testing {
namespace {

namespace fs = std::filesystem;

class ForwardCommand : public ::testing::Test {
 protected:
  // Runs `jetmoe forward` on a case's inputs; returns the exit status.
  int run(const std::string& fixture, const nlohmann::json& inputs, const std::string& flags) {
    std::ofstream(dir_ / "in.json") << inputs.dump();
    const std::string cmd = std::string(JETMOE_CLI_PATH) + " forward --model " + golden_dir(fixture) + " --input " +
                            (dir_ / "in.json").string() + " --output " + (dir_ / "out.safetensors").string() + " " + flags +
                            " 2>" + (dir_ / "stderr.txt").string();
    const int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  Tensor output(const std::string& name) {
    if (!out_) out_ = SafetensorsFile::open((dir_ / "out.safetensors").string());
    const TensorView* t = out_->find(name);
    EXPECT_NE(t, nullptr) << "output has no tensor " << name;
    if (!t) return Tensor({1});
    EXPECT_EQ(t->dtype, DType::F32);
    Tensor out(t->shape);
    std::copy_n(static_cast<const float*>(t->data), t->numel(), out.data.begin());
    return out;
  }
  void expect_scalar(const nlohmann::json& c, const std::string& key) {
    const double want = c.at("results").at(key).get<double>();
    const double got = output(key).data.at(0);
    EXPECT_LE(std::abs(got - want) / std::abs(want), 1e-5) << key << ": got " << got << ", want " << want;
  }

  ScopedTempDir tmp_;
  const fs::path& dir_ = tmp_.path();
  std::unique_ptr<SafetensorsFile> out_;
};

const nlohmann::json& find_case(const GoldenFixture& fx, const std::string& id) {
  for (const auto& c : fx.cases)
    if (c.at("id") == id) return c;
  throw Error("no case " + id);
}

TEST_F(ForwardCommand, ShardedLeftPaddedInChunksMatchesTransformers) {
  const GoldenFixture fx("tiny-sharded");
  const auto& c = find_case(fx, "fwd_b3_leftpad_posids");
  ASSERT_EQ(run(fx.name, c.at("inputs"), "--hidden-states --router-logits --chunks 4,2,1,1 --threads 2"), 0);
  const int64_t B = 3, T = 8;
  const auto mask = valid_mask(c, B, T);
  for (const auto& name : c.at("tensors")) {
    const std::string n = name.get<std::string>().substr(c.at("id").get<std::string>().size() + 1);
    EXPECT_LE(max_abs_diff(output(n), fx.tensor(name), mask, B, T, 0, T), 1e-4) << n;
  }
  expect_scalar(c, "aux_loss");
}

TEST_F(ForwardCommand, LossWithLabelsMatchesTransformers) {
  const GoldenFixture fx("tiny-tied-f32");
  const auto& c = find_case(fx, "loss_b2_rightpad_mask");
  ASSERT_EQ(run(fx.name, c.at("inputs"), ""), 0);
  expect_scalar(c, "loss");
  expect_scalar(c, "aux_loss");
  expect_scalar(c, "total_loss");
  const auto mask = valid_mask(c, 2, 9);
  EXPECT_LE(max_abs_diff(output("logits"), fx.tensor(c.at("id").get<std::string>() + ".logits"), mask, 2, 9, 0, 9), 1e-4);
}

TEST_F(ForwardCommand, SequenceClassificationFromArchitectures) {
  const GoldenFixture fx("tiny-seqcls-multilabel");
  const auto& c = find_case(fx, "cls_b3_rightpad");
  ASSERT_EQ(run(fx.name, c.at("inputs"), "--threads 1"), 0);
  expect_scalar(c, "loss");
  const std::vector<int32_t> rows(3, 1);
  EXPECT_LE(max_abs_diff(output("pooled_logits"), fx.tensor("cls_b3_rightpad.pooled_logits"), rows, 3, 1, 0, 1), 1e-4);
}

TEST_F(ForwardCommand, LastLogitsOnlyEqualsLastColumn) {
  const GoldenFixture fx("tiny-bf16");
  const auto& c = find_case(fx, "fwd_b1_t7_f32compute");
  ASSERT_EQ(run(fx.name, c.at("inputs"), "--last-logits-only --chunks 5,2"), 0);
  const Tensor last = output("logits");
  ASSERT_EQ(last.shape, (std::vector<int64_t>{1, 1, 256}));
  const TensorView& full = fx.tensor("fwd_b1_t7_f32compute.logits");
  const auto* e = static_cast<const float*>(full.data) + 6 * 256;
  for (int i = 0; i < 256; ++i) EXPECT_NEAR(last.data[static_cast<size_t>(i)], e[i], 1e-4);
}

TEST_F(ForwardCommand, HelpDocumentsInputAndOutput) {
  const std::string cmd = std::string(JETMOE_CLI_PATH) + " forward --help > " + (dir_ / "help.txt").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(dir_ / "help.txt");
  const std::string help((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* needle : {"--chunks", "--hidden-states", "--router-logits", "--task", "--threads", "attention_mask",
                             "pooled_logits", "router_logits.<i>", "aux_loss"})
    EXPECT_NE(help.find(needle), std::string::npos) << needle;
}

}  // namespace
}  // namespace jetmoe::testing
