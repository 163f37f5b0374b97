#include <algorithm>
#include <filesystem>

#include "jetmoe/error.h"
#include "jetmoe/losses.h"
#include "jetmoe/model.h"
#include "jetmoe/model_files.h"
#include "model/weights.h"
#include "ops/matmul.h"
#include "ops/page_buffer.h"

namespace jetmoe {

namespace {
ops::WeightMatrix lm_head_weight(const JetMoeModel& m, ops::PageBuffer* storage) {
  const JetMoeConfig& c = m.config();
  // Tied checkpoints omit lm_head.weight: the embedding matrix is the head.
  // A quantised .gguf of a tied model holds the head's quantised copy as
  // lm_head.weight (the embedding stays as stored for the lookup).
  const TensorView* quantized_head = m.files().find("lm_head.weight");
  const bool own_head = !c.tie_word_embeddings || (quantized_head && is_quantized(quantized_head->dtype));
  const char* name = own_head ? "lm_head.weight" : "model.embed_tokens.weight";
  return m.bind_head(name, c.vocab_size, storage);
}
}  // namespace

std::unique_ptr<JetMoeForCausalLM> JetMoeForCausalLM::from_pretrained(const std::string& path, const LoadOptions& options) {
  return std::make_unique<JetMoeForCausalLM>(JetMoeModel::from_pretrained(path, options));
}

JetMoeForCausalLM::JetMoeForCausalLM(std::unique_ptr<JetMoeModel> model)
    : model_(std::move(model)),
      lm_head_storage_(std::make_unique<ops::PageBuffer>()),
      lm_head_(std::make_unique<ops::WeightMatrix>(lm_head_weight(*model_, lm_head_storage_.get()))) {}

JetMoeForCausalLM::~JetMoeForCausalLM() = default;

void JetMoeForCausalLM::lm_head(const float* hidden, int64_t rows, float* logits) const {
  ops::matmul(model_->thread_pool(), hidden, rows, *lm_head_, logits);
}

Tensor JetMoeForCausalLM::forward_batch(const TokenBatch& batch, KVCache& cache, const std::vector<int64_t>& logit_rows,
                                        ForwardStats* stats) const {
  Tensor logits;
  forward_batch(batch, cache, logit_rows, logits, stats);
  return logits;
}

void JetMoeForCausalLM::forward_batch(const TokenBatch& batch, KVCache& cache, const std::vector<int64_t>& logit_rows,
                                      Tensor& logits, ForwardStats* stats) const {
  const int64_t D = config().hidden_size, V = config().vocab_size;
  // Per calling thread and grown only, like the model's own scratch.
  thread_local Tensor h;
  thread_local std::vector<float> rows;
  model_->forward_batch(batch, cache, h, stats);
  const int64_t N = h.shape[0], R = static_cast<int64_t>(logit_rows.size());
  logits.shape.assign({R, V});
  logits.data.resize(static_cast<size_t>(R * V));
  if (R == 0) return;
  rows.resize(static_cast<size_t>(R * D));
  for (int64_t r = 0; r < R; ++r) {
    const int64_t n = logit_rows[static_cast<size_t>(r)];
    if (n < 0 || n >= N)
      throw Error("forward_batch: logit row " + std::to_string(n) + " outside the batch's " + std::to_string(N) + " tokens");
    std::copy_n(&h.data[static_cast<size_t>(n * D)], D, &rows[static_cast<size_t>(r * D)]);
  }
  if (stats) stats->weight_bytes += ops::weight_bytes(*lm_head_);
  lm_head(rows.data(), R, logits.data.data());
}

CausalLMOutput JetMoeForCausalLM::forward(const ModelInput& input, KVCache* cache, const ForwardOptions& options,
                                          const std::vector<int32_t>* labels, bool logits_last_only) const {
  const JetMoeConfig& c = config();
  const int64_t B = input.batch_size, T = input.seq_len, D = c.hidden_size, V = c.vocab_size;
  if (labels && static_cast<int64_t>(labels->size()) != B * T)
    throw Error("labels: " + std::to_string(labels->size()) + " values, expected shape [" + std::to_string(B) + ", " +
                std::to_string(T) + "] like input_ids");
  if (labels && logits_last_only) throw Error("labels need the logits of every position; drop logits_last_only");
  ForwardOptions inner = options;
  inner.output_router_logits = options.output_router_logits || labels != nullptr;
  CausalLMOutput out;
  out.model = model_->forward(input, cache, inner);
  if (options.stats) options.stats->weight_bytes += ops::weight_bytes(*lm_head_);
  const Tensor& h = out.model.last_hidden_state;
  if (logits_last_only) {
    out.logits = Tensor({B, 1, V});
    if (T == 1) {
      lm_head(h.data.data(), B, out.logits.data.data());
    } else {
      // One matmul over the gathered last rows reads the head once, not B times.
      std::vector<float> last(static_cast<size_t>(B * D));
      for (int64_t b = 0; b < B; ++b)
        std::copy_n(&h.data[static_cast<size_t>((b * T + T - 1) * D)], D, &last[static_cast<size_t>(b * D)]);
      lm_head(last.data(), B, out.logits.data.data());
    }
  } else {
    out.logits = Tensor({B, T, V});
    lm_head(h.data.data(), B * T, out.logits.data.data());
  }
  if (inner.output_router_logits) {
    // The statistics cover the tokens of this call; with a cache the
    // attention mask's last T columns are theirs.
    std::vector<int32_t> mask;
    if (!input.attention_mask.empty()) {
      const int64_t total = static_cast<int64_t>(input.attention_mask.size()) / B;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = total - T; t < total; ++t) mask.push_back(input.attention_mask[static_cast<size_t>(b * total + t)]);
    }
    out.aux_loss = load_balancing_loss(out.model.router_logits, c.num_local_experts, c.num_experts_per_tok, mask);
  }
  if (labels) {
    out.loss = causal_lm_loss(out.logits, *labels);
    out.total_loss = *out.loss + c.aux_loss_coef * *out.aux_loss;
  }
  if (!options.output_router_logits) out.model.router_logits.clear();
  return out;
}

}  // namespace jetmoe
