#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "jetmoe/error.h"
#include "jetmoe/model.h"
#include "jetmoe/tokenizer.h"
#include "model_options.h"

namespace jetmoe::cli {

namespace {

struct ClassifyArgs {
  ModelOptions model;
  std::vector<std::string> texts;
  int top_k = 0;
  bool json = false;
};

const char* kClassifyHelp = R"(Classify texts with a JetMoeForSequenceClassification checkpoint, as
transformers' pipeline("text-classification") does: scores are softmax over
the labels for single-label models, sigmoid for multi-label (and one-label)
models, raw values for regression; label names come from config.json's
id2label (LABEL_i otherwise). Prints "label<TAB>score" lines, best first,
a blank line between texts; --json prints one object per text.)";

void run_classify(const ClassifyArgs& a) {
  const std::string dir = a.model.resolved_model();
  if (task_from_config(JetMoeConfig::from_pretrained(dir)) != Task::SequenceClassification)
    throw Error(dir + ": config.json's architectures does not name JetMoeForSequenceClassification; this is not a classification checkpoint");
  auto model = JetMoeForSequenceClassification::from_pretrained(dir, a.model.load_options());
  const JetMoeConfig& c = model->config();
  const Tokenizer tok = Tokenizer::from_pretrained(dir);
  const int64_t L = c.num_labels;
  const bool regression = c.problem_type == "regression";
  const bool sigmoid = !regression && (c.problem_type == "multi_label_classification" || L == 1);
  for (size_t t = 0; t < a.texts.size(); ++t) {
    // One text per forward: pooling takes the last token, so padding must
    // not get in the way.
    const std::vector<int32_t> ids = tok.encode(a.texts[t], true);
    if (ids.empty()) throw Error("classify: text " + std::to_string(t + 1) + " has no tokens");
    c.check_sequence_length(static_cast<int64_t>(ids.size()));
    const SequenceClassifierOutput out = model->forward(ModelInput::from_ids({ids}));
    std::vector<std::pair<std::string, double>> scores;
    double mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < L; ++i) mx = std::max(mx, static_cast<double>(out.pooled_logits.data[static_cast<size_t>(i)]));
    for (int64_t i = 0; i < L; ++i) sum += std::exp(out.pooled_logits.data[static_cast<size_t>(i)] - mx);
    for (int64_t i = 0; i < L; ++i) {
      const double x = out.pooled_logits.data[static_cast<size_t>(i)];
      const double s = regression ? x : sigmoid ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x - mx) / sum;
      auto it = c.id2label.find(i);
      scores.emplace_back(it != c.id2label.end() ? it->second : "LABEL_" + std::to_string(i), s);
    }
    std::stable_sort(scores.begin(), scores.end(), [](const auto& x, const auto& y) { return x.second > y.second; });
    if (a.top_k > 0 && static_cast<size_t>(a.top_k) < scores.size()) scores.resize(static_cast<size_t>(a.top_k));
    if (a.json) {
      nlohmann::json j{{"text", a.texts[t]}, {"labels", nlohmann::json::array()}};
      for (const auto& [label, s] : scores) j["labels"].push_back({{"label", label}, {"score", s}});
      std::cout << j.dump() << "\n";
    } else {
      if (t > 0) std::cout << "\n";
      for (const auto& [label, s] : scores) std::cout << label << "\t" << std::setprecision(6) << s << "\n";
    }
  }
}

}  // namespace

void add_classify_command(CLI::App& app) {
  auto args = std::make_shared<ClassifyArgs>();
  CLI::App* cmd = app.add_subcommand("classify", "Label texts with a sequence-classification checkpoint");
  cmd->footer(kClassifyHelp);
  add_model_options(cmd, args->model);
  cmd->add_option("--text,-t", args->texts, "Text to classify; repeat for several")->required();
  cmd->add_option("--top-k", args->top_k, "Print only the k best labels (default: all)")->check(CLI::Range(0, 1 << 20));
  cmd->add_flag("--json", args->json, "One JSON object per text");
  cmd->callback([args] { run_classify(*args); });
}

}  // namespace jetmoe::cli
