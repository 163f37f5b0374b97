#include "jetmoe/losses.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "jetmoe/error.h"
#include "ops/softmax.h"

namespace jetmoe {

namespace {
double log_sum_exp(const float* x, int64_t n) {
  double mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, static_cast<double>(x[i]));
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i]) - mx);
  return mx + std::log(s);
}
}  // namespace

double causal_lm_loss(const Tensor& logits, const std::vector<int32_t>& labels) {
  const int64_t B = logits.shape[0], T = logits.shape[1], V = logits.shape[2];
  if (static_cast<int64_t>(labels.size()) != B * T)
    throw Error("labels: " + std::to_string(labels.size()) + " values, expected shape [" + std::to_string(B) + ", " +
                std::to_string(T) + "] like input_ids");
  for (int32_t l : labels)
    if (l != -100 && (l < 0 || l >= V))
      throw Error("labels: value " + std::to_string(l) + " outside the vocabulary [0, " + std::to_string(V) + ") and not -100");
  double sum = 0.0;
  int64_t count = 0;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t + 1 < T; ++t) {
      const int32_t label = labels[static_cast<size_t>(b * T + t + 1)];
      if (label == -100) continue;
      const float* row = &logits.data[static_cast<size_t>((b * T + t) * V)];
      sum += log_sum_exp(row, V) - row[label];
      ++count;
    }
  }
  return count ? sum / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
}

double load_balancing_loss(const std::vector<Tensor>& router_logits, int64_t E, int64_t K,
                           const std::vector<int32_t>& mask) {
  // tokens_per_expert is [K, E] in transformers: the fraction of counted
  // rows whose j-th choice is e; summed against the mean probability of e.
  std::vector<double> routed(static_cast<size_t>(K * E), 0.0), prob(static_cast<size_t>(E), 0.0);
  std::vector<float> p(static_cast<size_t>(E)), top_val(static_cast<size_t>(K));
  std::vector<int32_t> top_idx(static_cast<size_t>(K));
  double counted = 0.0;
  for (const Tensor& logits : router_logits) {
    const int64_t rows = logits.shape[0];
    if (!mask.empty() && static_cast<int64_t>(mask.size()) != rows)
      throw Error("load_balancing_loss: attention_mask covers " + std::to_string(mask.size()) + " tokens but a router saw " +
                  std::to_string(rows));
    for (int64_t n = 0; n < rows; ++n) {
      if (!mask.empty() && !mask[static_cast<size_t>(n)]) continue;
      std::copy_n(&logits.data[static_cast<size_t>(n * E)], E, p.data());
      ops::softmax(p.data(), E);
      ops::top_k(p.data(), E, K, top_idx.data(), top_val.data());
      for (int64_t j = 0; j < K; ++j) routed[static_cast<size_t>(j * E + top_idx[static_cast<size_t>(j)])] += 1.0;
      for (int64_t e = 0; e < E; ++e) prob[static_cast<size_t>(e)] += p[static_cast<size_t>(e)];
      counted += 1.0;
    }
  }
  if (counted == 0.0) return std::numeric_limits<double>::quiet_NaN();
  double loss = 0.0;
  for (int64_t j = 0; j < K; ++j)
    for (int64_t e = 0; e < E; ++e) loss += (routed[static_cast<size_t>(j * E + e)] / counted) * (prob[static_cast<size_t>(e)] / counted);
  return loss * static_cast<double>(E);
}

double mse_loss(const float* pred, const float* target, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(pred[i]) - target[i];
    s += d * d;
  }
  return s / static_cast<double>(n);
}

double cross_entropy_loss(const Tensor& logits, const std::vector<int64_t>& class_ids) {
  const int64_t B = logits.shape[0], C = logits.shape[1];
  double s = 0.0;
  int64_t count = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t id = class_ids[static_cast<size_t>(b)];
    if (id == -100) continue;
    const float* row = &logits.data[static_cast<size_t>(b * C)];
    s += log_sum_exp(row, C) - row[id];
    ++count;
  }
  return count ? s / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
}

double bce_with_logits_loss(const float* x, const float* y, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i], t = y[i];
    s += std::max(v, 0.0) - v * t + std::log1p(std::exp(-std::abs(v)));
  }
  return s / static_cast<double>(n);
}

}  // namespace jetmoe
