#pragma once
#include <cstdint>

namespace jetmoe::ops {

// out[r] = weight * (x[r] / sqrt(mean(x[r]^2) + eps)) for each of `rows`
// rows of width `dim`, as transformers' RMSNorm computes it in float32.
void rms_norm(const float* x, int64_t rows, int64_t dim, const float* weight, float eps, float* out);

}  // namespace jetmoe::ops
