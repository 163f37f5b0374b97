#include "ops/softmax.h"

#include <cmath>

#include "ops/cpu_features.h"
#include "ops/exp_avx2.h"

namespace jetmoe::ops {

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

double exp_shifted(const float* x, int64_t n, float shift, float* out) {
  if (cpu_features().avx2_fma) return kernels::avx2_exp_shifted(x, n, shift, out);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float d = x[i] - shift;
    out[i] = d >= -87.0f ? std::exp(d) : 0.0f;
    sum += out[i];
  }
  return sum;
}

void top_k(const float* x, int64_t n, int64_t k, int32_t* index_out, float* value_out) {
  // k is the number of experts per token (a handful): selection beats sorting.
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; ++i) {
      bool taken = false;
      for (int64_t t = 0; t < j; ++t) taken |= index_out[t] == i;
      if (taken) continue;
      if (best < 0 || x[i] > x[best] || (std::isnan(x[i]) && !std::isnan(x[best]))) best = i;
    }
    index_out[j] = static_cast<int32_t>(best);
    value_out[j] = x[best];
  }
}

}  // namespace jetmoe::ops
