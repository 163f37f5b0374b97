#include "jetmoe/error.h"
#include "jetmoe/losses.h"
#include "jetmoe/model.h"
#include "jetmoe/model_files.h"
#include "model/weights.h"
#include "ops/matmul.h"

namespace jetmoe {

namespace {
ops::WeightMatrix score_weight(const JetMoeModel& m) {
  return bind_matrix(m.files(), "score.weight", m.config().num_labels, m.config().hidden_size);
}
}  // namespace

std::unique_ptr<JetMoeForSequenceClassification> JetMoeForSequenceClassification::from_pretrained(
    const std::string& path, const LoadOptions& options) {
  return std::make_unique<JetMoeForSequenceClassification>(JetMoeModel::from_pretrained(path, options));
}

JetMoeForSequenceClassification::JetMoeForSequenceClassification(std::unique_ptr<JetMoeModel> model)
    : model_(std::move(model)), score_(std::make_unique<ops::WeightMatrix>(score_weight(*model_))) {}

JetMoeForSequenceClassification::~JetMoeForSequenceClassification() = default;

std::vector<int64_t> JetMoeForSequenceClassification::pooling_index(const std::vector<int32_t>& ids, int64_t B,
                                                                    int64_t T) const {
  // Runs before the model's own input check (so a batch without pad id
  // fails before the forward), hence the shape check here too.
  check_input_ids_shape(ids.size(), B, T);
  const auto& pad = config().pad_token_id;
  if (!pad && B != 1)
    throw Error("sequence classification of a batch of " + std::to_string(B) +
                " needs pad_token_id in config.json to find each row's last token (transformers refuses this too)");
  std::vector<int64_t> index(static_cast<size_t>(B), T - 1);
  if (!pad) return index;
  // transformers: (argmax(input_ids == pad) - 1) % T, i.e. the token before
  // the first pad, wrapping to the last token when the row starts with a pad
  // or has none.
  for (int64_t b = 0; b < B; ++b) {
    int64_t first_pad = 0;
    for (int64_t t = 0; t < T; ++t) {
      if (ids[static_cast<size_t>(b * T + t)] == *pad) {
        first_pad = t;
        break;
      }
    }
    index[static_cast<size_t>(b)] = ((first_pad - 1) % T + T) % T;
  }
  return index;
}

Tensor JetMoeForSequenceClassification::pooled_logits(const Tensor& h, const std::vector<int64_t>& index) const {
  const int64_t B = h.shape[0], T = h.shape[1], D = h.shape[2], C = config().num_labels;
  Tensor out({B, C});
  for (int64_t b = 0; b < B; ++b)
    ops::matmul(model_->thread_pool(), &h.data[static_cast<size_t>((b * T + index[static_cast<size_t>(b)]) * D)], 1, *score_,
                &out.data[static_cast<size_t>(b * C)]);
  return out;
}

std::string JetMoeForSequenceClassification::problem_type(const ClassificationLabels& labels) const {
  const JetMoeConfig& c = config();
  if (!c.problem_type.empty()) return c.problem_type;
  if (c.num_labels == 1) return "regression";
  return labels.integer ? "single_label_classification" : "multi_label_classification";
}

double JetMoeForSequenceClassification::loss(const Tensor& logits, const ClassificationLabels& labels) const {
  const int64_t B = logits.shape[0], C = logits.shape[1];
  const std::string type = problem_type(labels);
  if (type == "single_label_classification") {
    if (static_cast<int64_t>(labels.class_ids.size()) != B)
      throw Error("labels: single-label classification needs one class id per row (" + std::to_string(B) + "), got " +
                  std::to_string(labels.class_ids.size()));
    for (int64_t id : labels.class_ids)
      if (id != -100 && (id < 0 || id >= C))
        throw Error("labels: class id " + std::to_string(id) + " outside [0, num_labels = " + std::to_string(C) + ")");
    return cross_entropy_loss(logits, labels.class_ids);
  }
  if (static_cast<int64_t>(labels.values.size()) != B * C)
    throw Error("labels: " + type + " needs " + std::to_string(B * C) + " values ([" + std::to_string(B) + ", " +
                std::to_string(C) + "]), got " + std::to_string(labels.values.size()));
  if (type == "regression") return mse_loss(logits.data.data(), labels.values.data(), B * C);
  return bce_with_logits_loss(logits.data.data(), labels.values.data(), B * C);
}

SequenceClassifierOutput JetMoeForSequenceClassification::forward(const ModelInput& input, const ForwardOptions& options,
                                                                  const ClassificationLabels* labels) const {
  SequenceClassifierOutput out;
  out.pooling_index = pooling_index(input.input_ids, input.batch_size, input.seq_len);
  out.model = model_->forward(input, nullptr, options);
  out.pooled_logits = pooled_logits(out.model.last_hidden_state, out.pooling_index);
  if (labels) out.loss = loss(out.pooled_logits, *labels);
  return out;
}

}  // namespace jetmoe
