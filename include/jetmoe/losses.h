#pragma once
#include <cstdint>
#include <vector>

#include "jetmoe/tensor.h"

namespace jetmoe {

// Mean cross-entropy of logits[b, t] against labels[b, t + 1] over labels
// != -100 (transformers' shift). NaN when no label counts, as in PyTorch.
double causal_lm_loss(const Tensor& logits, const std::vector<int32_t>& labels);

// transformers' load_balancing_loss_func over all routers: each router's
// logits are [B*T, E]; softmax over E, top-k of the probabilities,
// E * sum(fraction routed * mean probability). Rows where
// attention_mask [B, T] is 0 are excluded; an empty mask means all rows count.
double load_balancing_loss(const std::vector<Tensor>& router_logits, int64_t num_experts, int64_t top_k,
                           const std::vector<int32_t>& attention_mask);

double mse_loss(const float* predictions, const float* targets, int64_t n);
double cross_entropy_loss(const Tensor& logits, const std::vector<int64_t>& class_ids);  // ignores -100
double bce_with_logits_loss(const float* logits, const float* targets, int64_t n);

}  // namespace jetmoe
