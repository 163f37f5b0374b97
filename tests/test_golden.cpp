// Every forward, cached-forward, loss and classification case of the golden
// fixtures, against the values transformers computed. f32 cases (and the
// *_f32compute cases of bf16 weights) must agree within 1e-4 absolute and
// losses within 1e-5 relative; *_bf16compute cases are transformers' own
// bfloat16 arithmetic and are only reported.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "golden_fixture.h"

namespace jetmoe::testing {
namespace {

constexpr double kTensorTol = 1e-4;
constexpr double kLossRelTol = 1e-5;

struct Checker {
  const GoldenFixture& fx;
  const nlohmann::json& c;
  std::string id;
  bool informational;  // bf16-compute reference
  double worst = 0.0;
  int compared = 0;

  void tensor(const std::string& name, const Tensor& got, const std::vector<int32_t>& mask, int64_t B, int64_t mask_cols,
              int64_t col_offset, int64_t cols) {
    const double d = max_abs_diff(got, fx.tensor(id + "." + name), mask, B, mask_cols, col_offset, cols);
    worst = std::max(worst, d);
    ++compared;
    if (!informational) {
      EXPECT_LE(d, kTensorTol) << fx.name << " " << id << "." << name;
    }
  }
  void scalar(const std::string& key, double got) {
    const double want = c.at("results").at(key).get<double>();
    const double rel = std::abs(got - want) / std::max(1e-12, std::abs(want));
    if (!informational) {
      EXPECT_LE(rel, kLossRelTol) << fx.name << " " << id << " " << key << ": got " << got << ", want " << want;
    }
  }
  void base(const BaseModelOutput& m, const std::vector<int32_t>& mask, int64_t B, int64_t T) {
    tensor("last_hidden_state", m.last_hidden_state, mask, B, T, 0, T);
    for (size_t i = 0; i < m.hidden_states.size(); ++i)
      tensor("hidden_states." + std::to_string(i), m.hidden_states[i], mask, B, T, 0, T);
    for (size_t i = 0; i < m.router_logits.size(); ++i)
      tensor("router_logits." + std::to_string(i), m.router_logits[i], mask, B, T, 0, T);
  }
  ~Checker() {
    if (informational && compared) std::cout << "[bf16-compute reference] " << fx.name << " " << id << ": max |diff| " << worst << "\n";
  }
};

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, MatchesTransformers) {
  const GoldenFixture fx(GetParam());
  const bool classifier = fx.cases.at(0).at("model_class") == "JetMoeForSequenceClassification";
  std::unique_ptr<JetMoeForCausalLM> lm;
  std::unique_ptr<JetMoeForSequenceClassification> cls;
  if (classifier) {
    cls = JetMoeForSequenceClassification::from_pretrained(fx.dir);
  } else {
    lm = JetMoeForCausalLM::from_pretrained(fx.dir);
  }
  ForwardOptions all;
  all.output_hidden_states = true;
  all.output_router_logits = true;
  int checked = 0;
  for (const auto& c : fx.cases) {
    const std::string kind = c.at("kind");
    Checker check{fx, c, c.at("id"), c.value("compute_dtype", "float32") == "bfloat16"};
    SCOPED_TRACE(fx.name + " " + check.id);
    if (kind == "forward" || kind == "loss") {
      const cli::ForwardRequest req = request(c.at("inputs"), Task::CausalLM);
      const ModelInput& in = req.input;
      const int64_t B = in.batch_size, T = in.seq_len;
      const auto mask = valid_mask(c, B, T);
      ASSERT_EQ(req.has_labels, kind == "loss");
      const CausalLMOutput out = lm->forward(in, nullptr, all, req.has_labels ? &req.token_labels : nullptr);
      for (const auto& name : c.at("tensors")) {
        const std::string n = name.get<std::string>().substr(check.id.size() + 1);
        if (n == "logits") check.tensor("logits", out.logits, mask, B, T, 0, T);
      }
      if (kind == "forward") check.base(out.model, mask, B, T);
      if (kind == "loss") {
        for (size_t i = 0; i < out.model.router_logits.size(); ++i)
          check.tensor("router_logits." + std::to_string(i), out.model.router_logits[i], mask, B, T, 0, T);
        check.scalar("loss", *out.loss);
        check.scalar("total_loss", *out.total_loss);
      }
      check.scalar("aux_loss", *out.aux_loss);
      ++checked;
    } else if (kind == "forward_cached") {
      const ModelInput full = model_input(c.at("full"));
      const int64_t B = full.batch_size, T = full.seq_len;
      const auto mask = valid_mask(c, B, T);
      KVCache cache(lm->config(), B, T);
      int64_t col = 0;
      std::vector<nlohmann::json> parts = {c.at("prompt")};
      for (const auto& s : c.at("steps")) parts.push_back(s);
      for (size_t k = 0; k < parts.size(); ++k) {
        const ModelInput in = model_input(parts[k]);
        const CausalLMOutput out = lm->forward(in, &cache);
        check.tensor("step" + std::to_string(k) + ".logits", out.logits, mask, B, T, col, in.seq_len);
        col += in.seq_len;
      }
      if (fx.expected->find(check.id + ".full.logits"))
        check.tensor("full.logits", lm->forward(full).logits, mask, B, T, 0, T);
      ++checked;
    } else if (kind == "classify") {
      const cli::ForwardRequest req = request(c.at("inputs"), Task::SequenceClassification);
      const ModelInput& in = req.input;
      const int64_t B = in.batch_size, T = in.seq_len;
      const auto mask = valid_mask(c, B, T);
      ASSERT_TRUE(req.has_labels);
      const SequenceClassifierOutput out = cls->forward(in, all, &req.class_labels);
      EXPECT_EQ(out.pooling_index, c.at("pooling_index").get<std::vector<int64_t>>());
      const std::vector<int32_t> all_rows(static_cast<size_t>(B), 1);
      check.tensor("pooled_logits", out.pooled_logits, all_rows, B, 1, 0, 1);
      check.base(out.model, mask, B, T);
      check.scalar("loss", *out.loss);
      ++checked;
    }
  }
  EXPECT_GT(checked, 0) << "no forward cases in " << fx.name;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Golden,
                         ::testing::Values("tiny-tied-f32", "tiny-bf16", "tiny-sharded", "tiny-topall", "tiny-untied-top1",
                                           "small-llama-vocab", "tiny-seqcls-single", "tiny-seqcls-multilabel",
                                           "tiny-seqcls-regression"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace jetmoe::testing
