#pragma once
#include <cstdint>

namespace jetmoe::ops {

// In-place softmax over n values, max-subtracted, float32.
void softmax(float* x, int64_t n);

// out[i] = exp(x[i] - shift) for x[i] <= shift, to within 1e-7 relative
// (vectorised where the CPU allows); 0 where x[i] - shift < -87, so a -inf
// score has no mass. Returns the sum of out, accumulated in double.
// Sampling takes its probabilities from this.
double exp_shifted(const float* x, int64_t n, float shift, float* out);

// The k largest of x[0..n) in descending order (ties: lower index first).
void top_k(const float* x, int64_t n, int64_t k, int32_t* index_out, float* value_out);

}  // namespace jetmoe::ops
